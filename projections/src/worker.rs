//! `muster project`: every projection, each with its own consumer group and loop. A batch is
//! applied in one PostgreSQL transaction that also stores the consumed offsets; records below
//! the stored offsets were applied before and are skipped, so a batch read twice (after a
//! crash, a rebalance, or a replay's swap) is applied once.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use muster_runtime::batch::{BatchBounds, gather};
use muster_runtime::health::PartState;
use muster_runtime::{Health, KafkaConfig, Shutdown};
use muster_schemas::{Codec, DeadLetter, SourceOffset, TopicRecord};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::ProjectionsConfig;
use crate::projection::{InRecord, Projection, Rejected};
use crate::{dead_letters, offsets, refusal};

/// Every projection muster knows.
pub fn registry() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(crate::realtime::EventRealtime),
        Arc::new(crate::series::EventSeries),
        Arc::new(crate::series::GateSeries),
        Arc::new(crate::alerts::AlertLifecycle),
        Arc::new(crate::health::ServiceHealthHistory),
        Arc::new(crate::catalogue::EventCatalogue),
    ]
}

/// Looks a projection up by name, with the known names in the error.
pub fn find(name: &str) -> anyhow::Result<Arc<dyn Projection>> {
    let all = registry();
    let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
    let known = known.join(", ");
    all.into_iter()
        .find(|p| p.name() == name)
        .with_context(|| format!("no projection named {name:?} (known: {known})"))
}

/// Runs the registry's projections (or `cfg.only`) and the retention task.
pub async fn run(
    cfg: ProjectionsConfig,
    kafka: &KafkaConfig,
    codec: Codec,
    pool: deadpool_postgres::Pool,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut all = registry();
    for name in &cfg.only {
        find(name).context("projections.only")?;
    }
    if !cfg.only.is_empty() {
        all.retain(|p| cfg.only.iter().any(|n| n == p.name()));
    }
    let retention = {
        let (cfg, pool, shutdown) = (cfg.clone(), pool.clone(), shutdown.clone());
        tokio::spawn(async move { crate::retention::run(cfg.retention, pool, shutdown).await })
    };
    run_projections(all, cfg, kafka, codec, pool, health, shutdown).await?;
    retention.await.context("the retention task panicked")?
}

/// Runs `all` until shutdown, each with its consumer group, exactly-once into PostgreSQL, and
/// the publisher of the dead letters they record. Other stages with PostgreSQL read models fed
/// from topics (the webhook outbox) run theirs here.
pub async fn run_projections(
    all: Vec<Arc<dyn Projection>>,
    cfg: ProjectionsConfig,
    kafka: &KafkaConfig,
    codec: Codec,
    pool: deadpool_postgres::Pool,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut topics = vec![DeadLetter::TOPIC];
    for p in &all {
        topics.extend(p.topics());
    }
    // Compacted topics first, so that whichever worker creates them creates them compacted.
    muster_runtime::topics::ensure_compacted(kafka, &[muster_schemas::CatalogueEntry::TOPIC])
        .await?;
    muster_runtime::topics::ensure(kafka, &topics).await?;
    codec
        .register::<DeadLetter>()
        .await
        .context("registering the dead-letter schema")?;
    let producer: FutureProducer = kafka
        .producer()
        .create()
        .context("creating the dead-letter producer")?;
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (pool, codec, health, shutdown) = (
            pool.clone(),
            codec.clone(),
            health.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            dead_letters::run_publisher(pool, codec, producer, health, shutdown).await;
            Ok(())
        });
    }
    for p in all {
        let w = Worker {
            projection: p,
            cfg: cfg.clone(),
            kafka: kafka.clone(),
            codec: codec.clone(),
            pool: pool.clone(),
            health: health.clone(),
        };
        let shutdown = shutdown.clone();
        tasks.spawn(async move { w.run(shutdown).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a projection panicked")??;
    }
    Ok(())
}

/// What applying a batch needs besides the batch: shared by the live loop, the replay and
/// the benchmark.
pub struct Applier<'a> {
    pub projection: &'a dyn Projection,
    pub codec: &'a Codec,
    /// Key of the stored offsets: the projection's name live, another for a replay.
    pub offsets_key: &'a str,
    /// Where its tables are: `public` live, a fresh schema for a replay.
    pub schema: &'a str,
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
        let stage = format!("project:{name}");
        let letters: Vec<DeadLetter> = rejected
            .into_iter()
            .map(|r| {
                let rec = &fresh[r.index];
                tracing::warn!(projection = name, topic = %rec.topic, partition = rec.partition, offset = rec.offset, reason = %r.reason, "dead-lettered");
                let source = SourceOffset {
                    topic: rec.topic.clone(),
                    partition: rec.partition,
                    offset: rec.offset,
                };
                let event_id = r.event_id.or_else(|| rec.key.clone());
                DeadLetter::new(&stage, r.reason, source, event_id, rec.payload.clone())
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
        match a
            .projection
            .apply(&sp, a.schema, &self.fresh[range], a.codec)
            .await
        {
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

struct Worker {
    projection: Arc<dyn Projection>,
    cfg: ProjectionsConfig,
    kafka: KafkaConfig,
    codec: Codec,
    pool: deadpool_postgres::Pool,
    health: Health,
}

impl Worker {
    fn part(&self) -> String {
        format!("projections.{}", self.projection.name())
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let part = self.part();
        self.health.set(&part, PartState::Starting);
        // Only transient errors get here (bad records are dead-lettered): back off 2 s, 4 s,
        // 8 s, then every 10 s while PostgreSQL or Kafka stays down, from 2 s again after a
        // session that ran a minute.
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let started = std::time::Instant::now();
            if let Err(e) = self.consume(&shutdown).await {
                if started.elapsed() > Duration::from_secs(60) {
                    failures = 0;
                }
                let delay =
                    Duration::from_secs(2u64 << failures.min(3)).min(Duration::from_secs(10));
                failures += 1;
                tracing::error!(projection = self.projection.name(), error = %format!("{e:#}"), retry_in = ?delay, "projection failed; restarting");
                self.health.failing(&part, format!("{e:#}"));
                metrics::counter!("muster_projection_restarts_total", "projection" => self.projection.name())
                    .increment(1);
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
        Ok(())
    }

    /// Starts the consumer group where PostgreSQL says, not where Kafka's committed offsets
    /// (only a hint) say: they may have expired, or never been written, and `auto.offset.reset`
    /// would then skip or repeat records. Kafka accepts this only while no other process of
    /// the group is running, which is fine: a running member keeps the hints current.
    async fn seed_group_offsets(&self, consumer: &StreamConsumer) {
        let name = self.projection.name();
        let stored = match self.pool.get().await {
            Ok(client) => offsets::all(&client, name).await,
            Err(e) => {
                tracing::warn!(error = %e, "reading stored offsets");
                return;
            }
        };
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading stored offsets");
                return;
            }
        };
        if stored.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), o) in &stored {
            if let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(*o)) {
                tracing::warn!(error = %e, "seeding offsets");
                return;
            }
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::info!(
                projection = name,
                partitions = stored.len(),
                "consumer group starts at the offsets stored in PostgreSQL"
            ),
            Err(e) => {
                tracing::info!(projection = name, error = %e, "another member runs the group; its offsets stand")
            }
        }
    }

    async fn consume(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let name = self.projection.name();
        let mut kafka = self.kafka.clone();
        if self.projection.reads_from_start() {
            kafka.auto_offset_reset = muster_runtime::config::OffsetReset::Earliest;
        }
        let consumer: StreamConsumer = kafka
            .consumer(&format!("projections.{name}"))
            .create()
            .context("creating the Kafka consumer")?;
        self.seed_group_offsets(&consumer).await;
        consumer.subscribe(&self.projection.topics())?;
        self.health.ready(&self.part());
        let applier = Applier {
            projection: self.projection.as_ref(),
            codec: &self.codec,
            offsets_key: name,
            schema: "public",
        };
        let bounds = BatchBounds {
            max_records: self.cfg.batch_max_records,
            max_wait: self.cfg.batch_max_wait,
            idle: Duration::from_secs(1),
        };
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                b = gather(&consumer, bounds, |_| {}) => b?,
            };
            if batch.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let n = batch.len();
            let next = applier.apply(&self.pool, batch).await?;
            // Kafka's committed offsets only save re-reading after a restart; PostgreSQL
            // decides what is applied.
            let mut tpl = TopicPartitionList::new();
            for ((topic, p), o) in &next {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "committing the offset hint to Kafka failed");
            }
            metrics::counter!("muster_projection_records_total", "projection" => name)
                .increment(n as u64);
            metrics::histogram!("muster_projection_batch_seconds", "projection" => name)
                .record(started.elapsed().as_secs_f64());
        }
    }
}
