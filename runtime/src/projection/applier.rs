//! Applying one batch: in one PostgreSQL transaction with its offsets, skipping what an earlier
//! transaction applied, so a batch read twice (after a crash, a rebalance, or a replay's swap)
//! is applied once. The live tables' batches also record, last in that transaction, which
//! events changed ([`changes`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use anyhow::Context;
use muster_schemas::{Codec, DeadLetter};

use super::{InRecord, Projection, Rejected, changes, offsets, refusal};
use crate::dead_letters;

/// What applying a batch needs besides the batch: shared by the live loop, the replay and
/// the benchmark.
pub struct Applier<'a> {
    pub projection: &'a dyn Projection,
    pub codec: &'a Codec,
    /// Key of the stored offsets: the projection's name live, another for a replay.
    pub offsets_key: &'a str,
    /// Where its tables are: `public` live, a fresh schema for a replay.
    pub schema: &'a str,
    /// Whether applied records are announced in the change log: for the live tables only, as
    /// no reader sees a replay's or a benchmark's tables (a replay announces at its swap).
    pub announce: bool,
    /// Whether a commit waits for its WAL to reach the disk. A replay's batches need not (its
    /// rebuild is compared with the live tables before the swap, and its offsets commit with
    /// its rows, so a crash loses both together); the live tables' always do.
    pub durable: bool,
}

impl Applier<'_> {
    /// Applies `batch` in one transaction with its offsets, skipping what an earlier
    /// transaction applied. Records refused for a data reason are isolated ([`refusal`]) and
    /// recorded as dead letters in the same transaction; the others apply. Returns the next
    /// offset per (topic, partition).
    pub async fn apply(
        &self,
        pool: &deadpool_postgres::Pool,
        batch: Vec<InRecord>,
    ) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
        let mut client = pool.get().await.context("connecting to PostgreSQL")?;
        let mut tx = client.transaction().await?;
        if !self.durable {
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
        }
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for r in &batch {
            by_topic.entry(&r.topic).or_default().push(r.partition);
        }
        let mut stored: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (topic, mut partitions) in by_topic {
            partitions.sort_unstable();
            partitions.dedup();
            for (p, o) in offsets::lock(&tx, self.offsets_key, topic, &partitions).await? {
                stored.insert((topic.to_owned(), p), o);
            }
        }
        // Compared with a running next offset, not only the stored one: a partition revoked
        // and handed back within one batch is re-read from Kafka, and its records must not
        // count twice.
        let mut next = stored;
        let fresh: Vec<InRecord> = batch
            .into_iter()
            .filter(|r| {
                let n = next.entry((r.topic.clone(), r.partition)).or_insert(0);
                if r.offset < *n {
                    return false;
                }
                *n = r.offset + 1;
                true
            })
            .collect();
        if fresh.is_empty() {
            return Ok(next);
        }
        let name = self.projection.name();
        let mut savepoints = Savepoints {
            applier: self,
            tx: &mut tx,
            fresh: &fresh,
        };
        let rejected = refusal::bisect(fresh.len(), &mut savepoints)
            .await
            .with_context(|| format!("projection {name}"))?;
        let refused: BTreeSet<usize> = rejected.iter().map(|r| r.index).collect();
        let stage = format!("project:{name}");
        let letters: Vec<DeadLetter> = rejected
            .into_iter()
            .map(|r| {
                let rec = &fresh[r.index];
                tracing::warn!(projection = name, topic = %rec.topic, partition = rec.partition, offset = rec.offset, reason = %r.reason, "dead-lettered");
                let event_id = r.event_id.or_else(|| rec.key.clone());
                DeadLetter::new(&stage, r.reason, rec.source(), event_id, rec.payload.clone())
            })
            .collect();
        dead_letters::record(&*tx, &letters)
            .await
            .context("recording dead letters")?;
        let mut per_topic: BTreeMap<&str, BTreeMap<i32, i64>> = BTreeMap::new();
        for ((topic, p), o) in &next {
            per_topic.entry(topic).or_default().insert(*p, *o);
        }
        for (topic, offsets) in per_topic {
            offsets::store(&tx, self.offsets_key, topic, &offsets).await?;
        }
        if self.announce
            && let Some(kind) = self.projection.announces()
        {
            // Records are keyed by their event id; a refused record changed nothing, and a
            // key PostgreSQL cannot store (NUL) names no event a reader could ask about.
            let changed = fresh
                .iter()
                .enumerate()
                .filter(|(i, _)| !refused.contains(i))
                .filter_map(|(_, r)| r.key.as_deref())
                .filter(|k| !k.contains('\0'));
            changes::record(&tx, kind, changed)
                .await
                .context("recording the change log")?;
        }
        tx.commit()
            .await
            .context("committing the projection batch")?;
        if !letters.is_empty() {
            metrics::counter!("muster_dead_letters_total", "stage" => stage)
                .increment(letters.len() as u64);
        }
        Ok(next)
    }
}

/// Each attempt in a savepoint: a refused one rolls back to it, and the rest of the
/// transaction (offsets, ranges applied before) stands.
struct Savepoints<'a, 't> {
    applier: &'a Applier<'a>,
    tx: &'a mut deadpool_postgres::Transaction<'t>,
    fresh: &'a [InRecord],
}

#[async_trait::async_trait]
impl refusal::Attempt for Savepoints<'_, '_> {
    async fn attempt(&mut self, range: Range<usize>) -> anyhow::Result<Vec<Rejected>> {
        let a = self.applier;
        let sp = self.tx.transaction().await?;
        let at = super::Target {
            tx: &sp,
            schema: a.schema,
            batch: &self.fresh[range],
        };
        match a.projection.apply(at, a.codec).await {
            Ok(rejected) => {
                sp.commit().await?;
                Ok(rejected)
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }
}
