//! `muster project`: the `event_realtime` projection of `muster.normalized.v1`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use muster_runtime::health::PartState;
use muster_runtime::{Health, KafkaConfig, Shutdown};
use muster_schemas::{Codec, DeadLetter, NormalizedMetrics, SourceOffset, TopicRecord};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use crate::config::ProjectionsConfig;
use crate::{offsets, realtime};

const PART: &str = "projections.event_realtime";

pub async fn run(
    cfg: ProjectionsConfig,
    kafka: &KafkaConfig,
    codec: Codec,
    pool: deadpool_postgres::Pool,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    health.set(PART, PartState::Starting);
    muster_runtime::topics::ensure(kafka, &[NormalizedMetrics::TOPIC, DeadLetter::TOPIC]).await?;
    codec
        .register::<DeadLetter>()
        .await
        .context("registering the dead-letter schema")?;
    let dead_letters: FutureProducer = kafka
        .producer()
        .create()
        .context("creating the dead-letter producer")?;
    while !shutdown.is_cancelled() {
        let result = consume(
            &cfg,
            kafka,
            &codec,
            &pool,
            &dead_letters,
            &health,
            &shutdown,
        )
        .await;
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "projection failed; restarting");
            health.failing(PART, format!("{e:#}"));
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
    Ok(())
}

struct Batch {
    records: Vec<(SourceOffset, Vec<u8>)>,
}

async fn consume(
    cfg: &ProjectionsConfig,
    kafka: &KafkaConfig,
    codec: &Codec,
    pool: &deadpool_postgres::Pool,
    dead_letters: &FutureProducer,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = kafka
        .consumer(&format!("projections.{}", realtime::NAME))
        .create()
        .context("creating the Kafka consumer")?;
    consumer.subscribe(&[NormalizedMetrics::TOPIC])?;
    health.ready(PART);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = next_batch(&consumer, cfg) => b?,
        };
        if batch.records.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let n = batch.records.len();
        let next = apply(codec, pool, dead_letters, batch).await?;
        // Kafka's committed offsets only save re-reading after a restart; PostgreSQL decides.
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &next {
            tpl.add_partition_offset(NormalizedMetrics::TOPIC, *p, Offset::Offset(*o))?;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "committing the offset hint to Kafka failed");
        }
        metrics::counter!("muster_projection_records_total", "projection" => realtime::NAME)
            .increment(n as u64);
        metrics::histogram!("muster_projection_batch_seconds", "projection" => realtime::NAME)
            .record(started.elapsed().as_secs_f64());
    }
}

async fn next_batch(consumer: &StreamConsumer, cfg: &ProjectionsConfig) -> anyhow::Result<Batch> {
    let mut records = Vec::new();
    let mut deadline = Instant::now() + Duration::from_secs(1);
    while records.len() < cfg.batch_max_records {
        let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(m) => m.context("reading from Kafka")?,
        };
        if records.is_empty() {
            deadline = Instant::now() + cfg.batch_max_wait;
        }
        records.push((
            SourceOffset {
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                offset: msg.offset(),
            },
            msg.payload().unwrap_or_default().to_vec(),
        ));
    }
    Ok(Batch { records })
}

/// Applies a batch in one transaction with its offsets; returns the next offset per partition.
async fn apply(
    codec: &Codec,
    pool: &deadpool_postgres::Pool,
    dead_letters: &FutureProducer,
    batch: Batch,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut client = pool.get().await.context("connecting to PostgreSQL")?;
    let tx = client.transaction().await?;
    let partitions: Vec<i32> = {
        let mut p: Vec<i32> = batch.records.iter().map(|(s, _)| s.partition).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let stored = offsets::lock(&tx, realtime::NAME, NormalizedMetrics::TOPIC, &partitions).await?;
    let mut next = stored.clone();
    let mut decoded = Vec::with_capacity(batch.records.len());
    for (source, payload) in batch.records {
        if source.offset < stored.get(&source.partition).copied().unwrap_or(0) {
            continue; // applied by an earlier transaction
        }
        let n = next.entry(source.partition).or_insert(0);
        *n = (*n).max(source.offset + 1);
        match codec.decode::<NormalizedMetrics>(&payload).await {
            Ok(r) => decoded.push(r),
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(partition = source.partition, offset = source.offset, error = %e, "dead-lettered");
                let dl = DeadLetter::new("project", e.to_string(), source, None, payload);
                let bytes = codec.encode(&dl).await?;
                dead_letters
                    .send(
                        FutureRecord::<(), _>::to(DeadLetter::TOPIC).payload(&bytes),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .context("producing a dead letter")?;
            }
        }
    }
    realtime::apply(&tx, decoded).await?;
    offsets::store(&tx, realtime::NAME, NormalizedMetrics::TOPIC, &next).await?;
    tx.commit()
        .await
        .context("committing the projection batch")?;
    Ok(next)
}
