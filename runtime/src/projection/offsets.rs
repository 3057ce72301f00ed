//! Consumed offsets, stored in the same transaction as the rows they produced. Kafka's own
//! committed offsets are only a hint for where to start reading; these decide what is applied.

use std::collections::BTreeMap;

use tokio_postgres::Transaction;

pub const CREATE_TABLE: &str = "CREATE TABLE projection_offsets (
    projection text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition))";

/// Locks and returns the next offset to apply for each partition in `partitions` (0 when the
/// projection has never applied one). Concurrent workers on the same partition serialize here.
pub async fn lock(
    tx: &Transaction<'_>,
    projection: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset)
         SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p
         ON CONFLICT DO NOTHING",
        &[&projection, &topic, &partitions],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT partition, next_offset FROM projection_offsets
             WHERE projection = $1 AND topic = $2 AND partition = ANY($3)
             ORDER BY partition FOR UPDATE",
            &[&projection, &topic, &partitions],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

const SELECT_ALL: &str =
    "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1";

fn per_partition(rows: &[tokio_postgres::Row]) -> BTreeMap<(String, i32), i64> {
    rows.iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

/// Every stored offset of `projection`, per (topic, partition).
pub async fn all(
    client: &tokio_postgres::Client,
    projection: &str,
) -> Result<BTreeMap<(String, i32), i64>, tokio_postgres::Error> {
    Ok(per_partition(
        &client.query(SELECT_ALL, &[&projection]).await?,
    ))
}

/// [`all`], locked until `tx` ends: the projection's worker cannot store (apply) meanwhile.
pub async fn locked(
    tx: &Transaction<'_>,
    projection: &str,
) -> Result<BTreeMap<(String, i32), i64>, tokio_postgres::Error> {
    Ok(per_partition(
        &tx.query(&format!("{SELECT_ALL} FOR UPDATE"), &[&projection])
            .await?,
    ))
}

pub async fn store(
    tx: &Transaction<'_>,
    projection: &str,
    topic: &str,
    next: &BTreeMap<i32, i64>,
) -> Result<(), tokio_postgres::Error> {
    let partitions: Vec<i32> = next.keys().copied().collect();
    let offsets: Vec<i64> = next.values().copied().collect();
    tx.execute(
        "UPDATE projection_offsets o SET next_offset = n.next_offset, updated_at = now()
         FROM unnest($3::int[], $4::bigint[]) AS n(partition, next_offset)
         WHERE o.projection = $1 AND o.topic = $2 AND o.partition = n.partition",
        &[&projection, &topic, &partitions, &offsets],
    )
    .await?;
    Ok(())
}
