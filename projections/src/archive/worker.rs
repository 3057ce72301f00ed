//! The archiver's loop: read the topics, write each batch's files, record its progress.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use muster_runtime::batch::{BatchBounds, InRecord, gather};
use muster_runtime::config::OffsetReset;
use muster_runtime::restart::{Backoff, Supervisor};
use muster_runtime::{Env, Shutdown};
use muster_schemas::archive::TOPICS;
use muster_schemas::{Codec, DeadLetter, NormalizedMetrics, RawCheckin, RawSnapshot};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::config::ArchiveConfig;
use super::files::{self, ArchiveFile};
use super::ledger::{self, Lock, Range, Tp};
use super::rows::{Archived, Located};
use super::target::Target;

const PART: &str = "projections.archive";
const STAGE: &str = "archive";
/// Files put at once: object stores are slow per request and fast in parallel.
const PARALLEL_PUTS: usize = 8;
/// How often the topics' partition counts are checked for growth.
const PARTITIONS_CHECK: Duration = Duration::from_secs(60);

/// Runs the archive until shutdown. Call it only when `cfg.url` is set.
pub async fn run(env: &Env, cfg: ArchiveConfig) -> anyhow::Result<()> {
    let url = cfg
        .url
        .clone()
        .context("projections.archive.url is not set")?;
    cfg.validate().map_err(anyhow::Error::msg)?;
    let target = Target::open(&url, &cfg.options)?;
    {
        let mut client = env.pool.get().await.context("connecting to PostgreSQL")?;
        muster_runtime::migrate::apply(
            &mut client,
            &[
                &super::MIGRATIONS,
                &muster_runtime::dead_letters::MIGRATIONS,
            ],
        )
        .await?;
    }
    muster_runtime::topics::ensure(&env.kafka, &TOPICS).await?;
    let archiver = Archiver {
        name: env.kafka.group("archive"),
        cfg,
        env: env.clone(),
        target,
    };
    tracing::info!(%url, archive = %archiver.name, "archiving the raw and normalized topics");
    tokio::spawn(prune_personal(
        archiver.target.clone(),
        env.kafka.retention.clone(),
        env.shutdown.clone(),
    ));
    Supervisor {
        part: PART,
        backoff: Backoff::constant(Duration::from_secs(2)),
        counter: None,
    }
    .run(&env.health, &env.shutdown, || archiver.session())
    .await;
    Ok(())
}

fn tp(r: &InRecord) -> Tp {
    (r.topic.clone(), r.partition)
}

/// A batch's records, decoded, and those that would not decode.
#[derive(Default)]
struct Decoded {
    snapshots: Vec<Located<RawSnapshot>>,
    checkins: Vec<Located<RawCheckin>>,
    normalized: Vec<Located<NormalizedMetrics>>,
    dead_letters: Vec<DeadLetter>,
}

/// Whether a batch is new (its intent still to be stored) or one a crash left pending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    New,
    Pending,
}

struct Archiver {
    /// Names the archive's rows in PostgreSQL, its lock and its consumer group:
    /// `<group_prefix>.archive`.
    name: String,
    cfg: ArchiveConfig,
    env: Env,
    target: Target,
}

impl Archiver {
    /// Holds the lock, finishes a pending batch, then archives from the stored offsets until
    /// shutdown, an error, or a change of partitions (the caller starts a new session).
    async fn session(&self) -> anyhow::Result<()> {
        let Some(lock) = self.wait_for_lock().await? else {
            return Ok(());
        };
        let consumer = self.env.kafka.stream_consumer(STAGE)?;
        let partitions = self.list_partitions(&consumer)?;
        let stored = self.positions(&consumer, &partitions).await?;
        let pending = ledger::pending(&stored);
        let mut positions: BTreeMap<Tp, i64> = stored
            .into_iter()
            .filter(|(tp, _)| partitions.contains(tp))
            .map(|(tp, p)| (tp, p.next))
            .collect();
        if !pending.is_empty() {
            tracing::warn!(batch = ?pending, "rewriting the batch a crash left pending");
            metrics::counter!("muster_archive_redone_batches_total").increment(1);
            let records = self.reread(&pending).await?;
            self.write(records, &pending, Batch::Pending).await?;
            for (tp, range) in &pending {
                positions.insert(tp.clone(), range.end);
            }
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &positions {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        consumer
            .assign(&tpl)
            .context("assigning the archived partitions")?;
        self.env.health.ready(PART);
        let mut checked = std::time::Instant::now();
        loop {
            anyhow::ensure!(
                lock.is_held(),
                "the PostgreSQL session holding the archive's lock ended"
            );
            let (records, stop) = self.collect(&consumer, &positions).await?;
            if !records.is_empty() {
                let batch = ranges(&records, &positions);
                self.write(records, &batch, Batch::New).await?;
                let mut hint = TopicPartitionList::new();
                for (tp, range) in batch {
                    hint.add_partition_offset(&tp.0, tp.1, Offset::Offset(range.end))?;
                    positions.insert(tp, range.end);
                }
                // Only a hint for lag monitoring; PostgreSQL decides where the archive stands.
                if let Err(e) = consumer.commit(&hint, CommitMode::Async) {
                    tracing::debug!(error = %e, "committing the offset hint to Kafka failed");
                }
            }
            if stop {
                return Ok(());
            }
            if checked.elapsed() > PARTITIONS_CHECK {
                checked = std::time::Instant::now();
                if self.list_partitions(&consumer)? != partitions {
                    tracing::info!("the archived topics' partitions changed; reassigning");
                    return Ok(());
                }
            }
        }
    }

    /// `None` on shutdown. A standby archiver is ready: it takes over within seconds of the
    /// active one's end.
    async fn wait_for_lock(&self) -> anyhow::Result<Option<Lock>> {
        let mut standing_by = false;
        loop {
            if let Some(lock) = Lock::try_acquire(&self.env.pool, &self.name).await? {
                if standing_by {
                    tracing::info!("took over the archive");
                }
                return Ok(Some(lock));
            }
            if !standing_by {
                tracing::info!(archive = %self.name, "another process is archiving; standing by");
                self.env.health.ready(PART);
                standing_by = true;
            }
            tokio::select! {
                _ = self.env.shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// The stored position of every partition, recording where partitions the archive has
    /// not seen yet start (per `kafka.auto_offset_reset`), so a later restart never skips.
    async fn positions(
        &self,
        consumer: &StreamConsumer,
        partitions: &BTreeSet<Tp>,
    ) -> anyhow::Result<BTreeMap<Tp, ledger::Position>> {
        let client = self
            .env
            .pool
            .get()
            .await
            .context("connecting to PostgreSQL")?;
        let known = ledger::load(&**client, &self.name).await?;
        let new: Vec<&Tp> = partitions
            .iter()
            .filter(|tp| !known.contains_key(*tp))
            .collect();
        if new.is_empty() {
            return Ok(known);
        }
        let starts = tokio::task::block_in_place(|| {
            new.into_iter()
                .map(|(topic, partition)| {
                    let (low, high) = consumer
                        .fetch_watermarks(topic, *partition, Duration::from_secs(10))
                        .with_context(|| format!("reading the offsets of {topic}/{partition}"))?;
                    let start = match self.env.kafka.auto_offset_reset {
                        OffsetReset::Earliest => low,
                        OffsetReset::Latest => high,
                    };
                    Ok(((topic.clone(), *partition), start))
                })
                .collect::<anyhow::Result<BTreeMap<Tp, i64>>>()
        })?;
        tracing::info!(?starts, "archiving new partitions");
        ledger::init(&**client, &self.name, &starts).await?;
        ledger::load(&**client, &self.name).await
    }
}

impl Archiver {
    /// Reads until the batch is full or `batch_max_wait` after its first record, and says
    /// whether shutdown came meanwhile (`true`: write this batch, then stop). An idle second
    /// returns an empty batch, so the caller gets to check its lock and partitions.
    async fn collect(
        &self,
        consumer: &StreamConsumer,
        positions: &BTreeMap<Tp, i64>,
    ) -> anyhow::Result<(Vec<InRecord>, bool)> {
        let mut next = positions.clone();
        let bounds = BatchBounds {
            max_records: self.cfg.batch_max_records,
            max_bytes: self.cfg.batch_max_bytes,
            max_wait: self.cfg.batch_max_wait,
            idle: Duration::from_secs(1),
        };
        // Never twice in a batch, whatever the client redelivers.
        let records = gather(consumer, bounds, |_, r| match next.get_mut(&tp(r)) {
            Some(n) if r.offset >= *n => {
                *n = r.offset + 1;
                true
            }
            _ => false,
        })
        .await?;
        Ok((records, self.env.shutdown.is_cancelled()))
    }

    /// Reads exactly the records of a pending batch again, with a consumer of its own.
    async fn reread(&self, batch: &BTreeMap<Tp, Range>) -> anyhow::Result<Vec<InRecord>> {
        let consumer = self.env.kafka.stream_consumer(STAGE)?;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), range) in batch {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(range.from))?;
        }
        consumer.assign(&tpl)?;
        // The last record of each range is a record the batch held, so it is there to read.
        let mut open: BTreeMap<Tp, i64> = batch.iter().map(|(tp, r)| (tp.clone(), r.end)).collect();
        let mut records = Vec::new();
        while !open.is_empty() {
            let msg = tokio::time::timeout(Duration::from_secs(120), consumer.recv())
                .await
                .with_context(|| format!("re-reading the pending batch: nothing for 2 minutes, still missing {open:?}"))?
                .context("reading from Kafka")?;
            let r = InRecord::from_message(&msg);
            let Some(&end) = open.get(&tp(&r)) else {
                continue;
            };
            if r.offset >= end - 1 {
                open.remove(&tp(&r));
            }
            if r.offset < end {
                records.push(r);
            }
        }
        Ok(records)
    }

    /// Stores the intent (for a new batch), writes every file, then advances the offsets,
    /// clears the intent and records the dead letters of what did not decode in one
    /// transaction (published from there by the projections' publisher, which `muster project`
    /// runs beside the archive).
    async fn write(
        &self,
        records: Vec<InRecord>,
        batch: &BTreeMap<Tp, Range>,
        kind: Batch,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let decoded = decode(&self.env.codec, records).await?;
        let mut client = self
            .env
            .pool
            .get()
            .await
            .context("connecting to PostgreSQL")?;
        if kind == Batch::New {
            ledger::begin(&mut client, &self.name, batch).await?;
        }
        let Decoded {
            snapshots,
            checkins,
            normalized,
            dead_letters,
        } = decoded;
        let encoded: Vec<ArchiveFile> = tokio::task::spawn_blocking(move || {
            let mut all = files::encode(snapshots)?;
            all.extend(files::encode(checkins)?);
            all.extend(files::encode(normalized)?);
            anyhow::Ok(all)
        })
        .await
        .context("encoding the batch's files")??;
        let written: Vec<(&'static str, usize)> = futures::stream::iter(encoded)
            .map(|f| async move {
                self.target.put(&f.path, f.bytes).await?;
                anyhow::Ok((f.topic, f.rows))
            })
            .buffer_unordered(PARALLEL_PUTS)
            .try_collect()
            .await?;
        ledger::finish(&mut client, &self.name, batch, &dead_letters).await?;
        metrics::counter!("muster_archive_dead_letters_total").increment(dead_letters.len() as u64);
        for (topic, rows) in &written {
            metrics::counter!("muster_archive_files_total", "topic" => *topic).increment(1);
            metrics::counter!("muster_archive_rows_total", "topic" => *topic)
                .increment(*rows as u64);
        }
        metrics::histogram!("muster_archive_batch_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(files = written.len(), ?batch, "archived a batch");
        Ok(())
    }
}

async fn decode(codec: &Codec, records: Vec<InRecord>) -> anyhow::Result<Decoded> {
    let mut d = Decoded::default();
    for r in records {
        if codec.topics().is::<RawSnapshot>(&r.topic) {
            decode_into(codec, r, &mut d.snapshots, &mut d.dead_letters).await?;
        } else if codec.topics().is::<RawCheckin>(&r.topic) {
            decode_into(codec, r, &mut d.checkins, &mut d.dead_letters).await?;
        } else {
            decode_into(codec, r, &mut d.normalized, &mut d.dead_letters).await?;
        }
    }
    Ok(d)
}

/// An undecodable record is dead-lettered and not archived; an unreachable registry is an
/// error (the batch is retried).
async fn decode_into<T: Archived>(
    codec: &Codec,
    r: InRecord,
    out: &mut Vec<Located<T>>,
    dead_letters: &mut Vec<DeadLetter>,
) -> anyhow::Result<()> {
    match codec.decode::<T>(&r.payload).await {
        Ok(record) => out.push(Located {
            partition: r.partition,
            offset: r.offset,
            record,
        }),
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "dead-lettered");
            dead_letters.push(DeadLetter::new(
                STAGE,
                e.to_string(),
                r.source(),
                r.key,
                r.payload,
            ));
        }
    }
    Ok(())
}

impl Archiver {
    /// Every partition of the archived topics, by their names on the cluster.
    fn list_partitions(&self, consumer: &StreamConsumer) -> anyhow::Result<BTreeSet<Tp>> {
        let names = self.env.kafka.topics();
        tokio::task::block_in_place(|| {
            let mut all = BTreeSet::new();
            for topic in TOPICS.map(|t| names.name(t)) {
                let topic = topic.as_str();
                let meta = consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(10))
                    .with_context(|| format!("reading the metadata of {topic}"))?;
                let found: Vec<i32> = meta
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic)
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                anyhow::ensure!(!found.is_empty(), "topic {topic} has no partitions yet");
                all.extend(found.into_iter().map(|p| (topic.to_owned(), p)));
            }
            Ok(all)
        })
    }
}

/// Each partition's range in a batch: from where it stood to just past its last record.
fn ranges(records: &[InRecord], positions: &BTreeMap<Tp, i64>) -> BTreeMap<Tp, Range> {
    let mut out: BTreeMap<Tp, Range> = BTreeMap::new();
    for r in records {
        let tp = tp(r);
        let from = positions.get(&tp).copied().unwrap_or(r.offset);
        let range = out.entry(tp).or_insert(Range { from, end: from });
        range.end = range.end.max(r.offset + 1);
    }
    out
}

/// Deletes the archive's days of personal topics (check-ins) past `kafka.retention.personal`,
/// at start and then hourly: the archive keeps personal data no longer than Kafka does.
async fn prune_personal(
    target: Target,
    retention: muster_runtime::topics::Retention,
    shutdown: Shutdown,
) {
    loop {
        let Ok(keep) = chrono::Duration::from_std(retention.personal) else {
            return;
        };
        let cutoff = (chrono::Utc::now() - keep).date_naive();
        for topic in &retention.personal_topics {
            match target.prune_days_before(topic, cutoff).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(%topic, files = n, %cutoff, "archive: deleted days past retention")
                }
                Err(e) => {
                    tracing::warn!(%topic, error = %format!("{e:#}"), "archive: pruning failed")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(topic: &str, partition: i32, offset: i64) -> InRecord {
        InRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            key: None,
            payload: vec![],
        }
    }

    #[test]
    fn a_batch_covers_each_partition_from_its_position_past_its_last_record() {
        let positions = BTreeMap::from([
            ((TOPICS[0].to_owned(), 0), 10),
            ((TOPICS[1].to_owned(), 1), 3),
        ]);
        // Offsets 10 and 11 of snapshots/0 were transaction markers: the range still starts at 10.
        let records = [
            raw(TOPICS[0], 0, 12),
            raw(TOPICS[0], 0, 14),
            raw(TOPICS[1], 1, 3),
        ];
        let r = ranges(&records, &positions);
        assert_eq!(r[&(TOPICS[0].to_owned(), 0)], Range { from: 10, end: 15 });
        assert_eq!(r[&(TOPICS[1].to_owned(), 1)], Range { from: 3, end: 4 });
        assert_eq!(r.len(), 2);
    }
}
