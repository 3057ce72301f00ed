//! The archive's progress in PostgreSQL: per topic partition, the next offset to archive and,
//! while a batch is being written, the end of its range (the intent). Files are written only
//! after their batch's intent is stored, and the offsets move past a batch only in the
//! transaction that clears its intent, so after a crash the intent names exactly the records
//! whose files may be partly written, and nothing else.

use std::collections::BTreeMap;

use anyhow::Context;
use muster_schemas::DeadLetter;
use tokio_postgres::GenericClient;

pub const CREATE_TABLE: &str = "CREATE TABLE archive_offsets (
    archive text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    pending_end bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (archive, topic, partition),
    CHECK (pending_end IS NULL OR pending_end > next_offset))";

/// A topic partition.
pub type Tp = (String, i32);

/// Where a partition stands: `[next, pending_end)` is being written when `pending_end` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub next: i64,
    pub pending_end: Option<i64>,
}

/// A batch's range in one partition: `[from, end)`, `from` being where the partition stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub end: i64,
}

/// Records where partitions that the archive has never seen start; known ones are kept.
pub async fn init(
    client: &impl GenericClient,
    archive: &str,
    starts: &BTreeMap<Tp, i64>,
) -> anyhow::Result<()> {
    let topics: Vec<&str> = starts.keys().map(|(t, _)| t.as_str()).collect();
    let partitions: Vec<i32> = starts.keys().map(|(_, p)| *p).collect();
    let offsets: Vec<i64> = starts.values().copied().collect();
    client
        .execute(
            "INSERT INTO archive_offsets (archive, topic, partition, next_offset)
             SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS s(t, p, o)
             ON CONFLICT DO NOTHING",
            &[&archive, &topics, &partitions, &offsets],
        )
        .await
        .context("recording where new partitions start")?;
    Ok(())
}

pub async fn load(
    client: &impl GenericClient,
    archive: &str,
) -> anyhow::Result<BTreeMap<Tp, Position>> {
    let rows = client
        .query(
            "SELECT topic, partition, next_offset, pending_end FROM archive_offsets
             WHERE archive = $1",
            &[&archive],
        )
        .await
        .context("reading the archive's offsets")?;
    Ok(positions(&rows))
}

/// The positions in rows of `topic, partition, next_offset, pending_end`.
fn positions(rows: &[tokio_postgres::Row]) -> BTreeMap<Tp, Position> {
    rows.iter()
        .map(|r| {
            let position = Position {
                next: r.get(2),
                pending_end: r.get(3),
            };
            ((r.get(0), r.get(1)), position)
        })
        .collect()
}

/// Locks the rows of `batch` and checks each still stands where the batch began, with the
/// intent `pending` (`None`: no intent). Another archiver that moved them means this one lost
/// its turn: it must stop before writing anything.
async fn check(
    tx: &tokio_postgres::Transaction<'_>,
    archive: &str,
    batch: &BTreeMap<Tp, Range>,
    pending: bool,
) -> anyhow::Result<()> {
    let rows = tx
        .query(
            "SELECT topic, partition, next_offset, pending_end FROM archive_offsets
             WHERE archive = $1 ORDER BY topic, partition FOR UPDATE",
            &[&archive],
        )
        .await?;
    let stored = positions(&rows);
    for ((topic, partition), range) in batch {
        let expected = Position {
            next: range.from,
            pending_end: pending.then_some(range.end),
        };
        let found = stored.get(&(topic.clone(), *partition));
        anyhow::ensure!(
            found == Some(&expected),
            "the archive's offsets of {topic}/{partition} are {found:?}, expected {expected:?}: \
             another archiver moved them"
        );
    }
    Ok(())
}

/// Stores the intent to write `batch`: from now on, a restart rewrites exactly these records.
pub async fn begin(
    client: &mut tokio_postgres::Client,
    archive: &str,
    batch: &BTreeMap<Tp, Range>,
) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    check(&tx, archive, batch, false).await?;
    update(&tx, archive, batch, "pending_end = u.end_offset").await?;
    tx.commit().await.context("storing the batch's intent")
}

/// The batch's files are all written: advances its partitions, clears the intent and records
/// the batch's dead letters (once, however often a batch is rewritten).
pub async fn finish(
    client: &mut tokio_postgres::Client,
    archive: &str,
    batch: &BTreeMap<Tp, Range>,
    dead_letters: &[DeadLetter],
) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    check(&tx, archive, batch, true).await?;
    update(
        &tx,
        archive,
        batch,
        "next_offset = u.end_offset, pending_end = NULL",
    )
    .await?;
    muster_runtime::dead_letters::record(&tx, dead_letters)
        .await
        .context("recording the batch's dead letters")?;
    tx.commit().await.context("committing the batch's offsets")
}

async fn update(
    tx: &tokio_postgres::Transaction<'_>,
    archive: &str,
    batch: &BTreeMap<Tp, Range>,
    set: &str,
) -> anyhow::Result<()> {
    let topics: Vec<&str> = batch.keys().map(|(t, _)| t.as_str()).collect();
    let partitions: Vec<i32> = batch.keys().map(|(_, p)| *p).collect();
    let ends: Vec<i64> = batch.values().map(|r| r.end).collect();
    tx.execute(
        &format!(
            "UPDATE archive_offsets o SET {set}, updated_at = now()
             FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, end_offset)
             WHERE o.archive = $1 AND o.topic = u.topic AND o.partition = u.partition"
        ),
        &[&archive, &topics, &partitions, &ends],
    )
    .await?;
    Ok(())
}

/// The pending batch left by a crash, if any.
pub fn pending(positions: &BTreeMap<Tp, Position>) -> BTreeMap<Tp, Range> {
    positions
        .iter()
        .filter_map(|(tp, p)| {
            p.pending_end
                .map(|end| (tp.clone(), Range { from: p.next, end }))
        })
        .collect()
}

/// One archiver per archive: a session-level advisory lock, held on a connection of its own
/// for as long as the archiver runs, and released by PostgreSQL when that session ends (a
/// killed process included).
pub struct Lock {
    client: deadpool_postgres::ClientWrapper,
}

impl Lock {
    /// `None` when another session holds it.
    pub async fn try_acquire(
        pool: &deadpool_postgres::Pool,
        archive: &str,
    ) -> anyhow::Result<Option<Self>> {
        let client = pool.get().await.context("connecting to PostgreSQL")?;
        // Taken out of the pool: returning a connection that holds the lock would leak it.
        let client = deadpool_postgres::Object::take(client);
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('muster.archive:' || $1, 0))",
                &[&archive],
            )
            .await
            .context("taking the archive's advisory lock")?
            .get(0);
        Ok(got.then_some(Self { client }))
    }

    /// False once the session (and so the lock) is gone.
    pub fn is_held(&self) -> bool {
        !self.client.is_closed()
    }
}
