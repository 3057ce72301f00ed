//! The live loop: every projection with its own consumer group, exactly once into PostgreSQL,
//! beside the publisher of the dead letters they record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use muster_schemas::{CatalogueEntry, DeadLetter, TopicRecord};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{Applier, Projection, offsets};
use crate::batch::{BatchBounds, gather};
use crate::restart::{Backoff, Supervisor};
use crate::{Env, dead_letters};

/// How big a projection's batches get.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    pub max_records: usize,
    /// Time from a batch's first record to its close.
    pub max_wait: Duration,
}

impl Batches {
    /// The bounds of one batch, waiting up to `idle` for its first record.
    pub fn bounds(self, idle: Duration) -> BatchBounds {
        BatchBounds {
            max_records: self.max_records,
            max_wait: self.max_wait,
            idle,
            ..BatchBounds::default()
        }
    }
}

/// Runs `all` until shutdown, each with its consumer group, exactly once into PostgreSQL, and
/// the publisher of the dead letters they record.
pub async fn run(env: &Env, all: Vec<Arc<dyn Projection>>, batches: Batches) -> anyhow::Result<()> {
    let mut topics = vec![DeadLetter::TOPIC];
    for p in &all {
        topics.extend(p.topics());
    }
    // Compacted topics first, so that whichever worker creates them creates them compacted.
    crate::topics::ensure_compacted(&env.kafka, &[CatalogueEntry::TOPIC]).await?;
    crate::topics::ensure(&env.kafka, &topics).await?;
    let publisher = dead_letters::Publisher::new(env).await?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move {
        publisher.run().await;
        Ok(())
    });
    for p in all {
        let w = Worker {
            projection: p,
            batches,
            env: env.clone(),
            instance: crate::unique_suffix(),
        };
        tasks.spawn(async move { w.run().await });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a projection panicked")??;
    }
    Ok(())
}

struct Worker {
    projection: Arc<dyn Projection>,
    batches: Batches,
    env: Env,
    /// Its static group membership, the same for every session (see
    /// `KafkaConfig::static_consumer`).
    instance: String,
}

impl Worker {
    fn part(&self) -> String {
        format!("projections.{}", self.projection.name())
    }

    async fn run(self) -> anyhow::Result<()> {
        let part = self.part();
        Supervisor {
            part: &part,
            backoff: Backoff::doubling(),
            counter: Some((
                "muster_projection_restarts_total",
                "projection",
                self.projection.name().to_owned(),
            )),
        }
        .run(&self.env.health, &self.env.shutdown, || self.consume())
        .await;
        Ok(())
    }

    /// Starts the consumer group where PostgreSQL says, not where Kafka's committed offsets
    /// (only a hint) say: they may have expired, or never been written, and `auto.offset.reset`
    /// would then skip or repeat records. Kafka accepts this only while no other process of
    /// the group is running, which is fine: a running member keeps the hints current. The
    /// commit comes from a dynamic consumer of its own: under the worker's static membership,
    /// a commit while the previous session's member is still in the group would fence the
    /// instance, which librdkafka treats as fatal.
    async fn seed_group_offsets(&self, kafka: &crate::KafkaConfig, group: &str) {
        let consumer: StreamConsumer = match kafka.consumer(group).create() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "creating the consumer that seeds offsets");
                return;
            }
        };
        let name = self.projection.name();
        let stored = match self.env.pool.get().await {
            Ok(client) => offsets::all(&client, name)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        let stored = match stored {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading stored offsets");
                return;
            }
        };
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

    async fn consume(&self) -> anyhow::Result<()> {
        let name = self.projection.name();
        let mut kafka = self.env.kafka.clone();
        if self.projection.reads_from_start() {
            kafka.auto_offset_reset = crate::config::OffsetReset::Earliest;
        }
        let group = format!("projections.{name}");
        let consumer: StreamConsumer = kafka
            .static_consumer(&group, &self.instance)
            .create()
            .with_context(|| format!("creating the Kafka consumer of {}", kafka.group(&group)))?;
        self.seed_group_offsets(&kafka, &group).await;
        let topics: Vec<String> = self
            .projection
            .topics()
            .iter()
            .map(|t| kafka.topics().name(t))
            .collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        self.env.health.ready(&self.part());
        let applier = Applier {
            projection: self.projection.as_ref(),
            codec: &self.env.codec,
            offsets_key: name,
            schema: "public",
            announce: true,
            durable: true,
        };
        let bounds = self.batches.bounds(Duration::from_secs(1));
        let shutdown = &self.env.shutdown;
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                b = gather(&consumer, bounds, |_, _| true) => b?,
            };
            if batch.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let n = batch.len();
            let next = applier.apply(&self.env.pool, batch).await?;
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
