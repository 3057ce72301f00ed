//! The change log: after each committed batch, which events changed in which read model, so
//! live readers (the API's feed) re-read only those. Rows are numbered and written in the
//! batch's own transaction, so they are as durable as the batch and a reader resumes by number;
//! a `NOTIFY` in the same transaction only wakes listeners when it commits (a notification is
//! lost when no one listens, the rows are not).
//!
//! **Ids follow commit order.** The table is locked `IN EXCLUSIVE MODE` (readers go on; other
//! writers wait) before the ids are drawn, and the lock is held until the transaction ends. So
//! no transaction draws an id while one that drew a smaller id is still uncommitted, and a
//! reader that has seen id `n` never later finds a row below `n` appear: reading `id > last`
//! misses nothing. (A sequence alone would not do: ids are drawn at insert and committed in
//! any order.) The price is that batches of different projections commit their change-log
//! rows one after another, so this runs last, just before the commit, to keep that short.
//! Ids may have gaps (a commit that failed after drawing them); readers never count on them
//! being consecutive.

use std::collections::BTreeSet;

use muster_schemas::read_models::ChangeKind;
use tokio_postgres::Transaction;

/// The channel a commit that wrote change-log rows notifies (no payload: listeners read the
/// log).
pub const CHANNEL: &str = "muster_changes";

pub const CREATE_TABLE: &str = "CREATE TABLE change_log (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id text NOT NULL,
        kind text NOT NULL,
        at timestamptz NOT NULL DEFAULT now());
     CREATE INDEX ON change_log (at)";

/// Records that `kind` changed for each of `event_ids` (each once), and notifies [`CHANNEL`]
/// when `tx` commits. Call it last before the commit: it holds the log's lock until then (see
/// the module's doc).
pub async fn record<'a>(
    tx: &Transaction<'_>,
    kind: ChangeKind,
    event_ids: impl IntoIterator<Item = &'a str>,
) -> Result<u64, tokio_postgres::Error> {
    let ids: Vec<&str> = event_ids
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    tx.batch_execute(&format!(
        "LOCK TABLE change_log IN EXCLUSIVE MODE; NOTIFY {CHANNEL}"
    ))
    .await?;
    tx.execute(
        // The time of the insert, not of the transaction's start: how long the batch took is
        // not the readers' lag.
        "INSERT INTO change_log (event_id, kind, at)
         SELECT e, $2, clock_timestamp() FROM unnest($1::text[]) AS e",
        &[&ids, &kind.as_str()],
    )
    .await
}

/// Deletes the rows older than `keep` but the newest (so the log always says how far it got,
/// and an empty log means nothing was ever recorded); returns how many. Readers resuming
/// from an id older than what is left are told to start over (see the API's feed).
pub async fn prune(
    client: &tokio_postgres::Client,
    keep: std::time::Duration,
) -> Result<u64, tokio_postgres::Error> {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "DELETE FROM change_log WHERE at < now() - $1::bigint * interval '1 millisecond'
               AND id < (SELECT max(id) FROM change_log)",
            &[&keep_ms],
        )
        .await
}
