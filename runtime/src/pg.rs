//! PostgreSQL helpers every worker shares.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Runs one statement in its own transaction, committed without waiting for its WAL to reach
/// the disk (`synchronous_commit = off`), in one round trip (begin, statement and commit are
/// pipelined). Only for writes a PostgreSQL crash may lose without harm, because what they
/// record is written again (a webhook lease or attempt record: the delivery is sent again; a
/// collection's start or end in `service_status`: the next collection writes it). Visibility
/// to other sessions is immediate either way; what a crash keeps is a prefix of what was
/// written. Waiting for a flush per statement was most of a delivery's, and a collection's,
/// time where a flush is slow.
pub async fn unflushed(
    client: &deadpool_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> anyhow::Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    // All three are awaited to the end, so the connection never goes back to the pool inside
    // the transaction; a failed statement makes the COMMIT a rollback.
    let (begun, rows, committed) = tokio::join!(
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
        client.query(&statement, params),
        client.batch_execute("COMMIT"),
    );
    begun?;
    let rows = rows?;
    committed?;
    Ok(rows)
}
