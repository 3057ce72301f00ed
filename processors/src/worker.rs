//! `muster process`: the normalizer, raw snapshots in, normalized metrics or dead letters out.

use std::time::Duration;

use anyhow::Context;
use muster_runtime::health::PartState;
use muster_runtime::{Health, KafkaConfig, Shutdown};
use muster_schemas::{
    Codec, DeadLetter, NormalizedMetrics, RawSnapshot, SourceOffset, TopicRecord,
};

use crate::config::ProcessorsConfig;
use crate::normalize::{self, Normalizer};
use crate::transactional::{InRecord, OutRecord, TransactionalLoop};

const PART: &str = "processors.normalize";
const GROUP: &str = "processors.normalize";

pub async fn run(
    cfg: ProcessorsConfig,
    kafka: &KafkaConfig,
    codec: Codec,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    health.set(PART, PartState::Starting);
    muster_runtime::topics::ensure(
        kafka,
        &[
            RawSnapshot::TOPIC,
            NormalizedMetrics::TOPIC,
            DeadLetter::TOPIC,
        ],
    )
    .await?;
    codec
        .register::<NormalizedMetrics>()
        .await
        .context("registering the normalized metrics schema")?;
    codec
        .register::<DeadLetter>()
        .await
        .context("registering the dead-letter schema")?;
    let normalizers = normalize::registry();
    while !shutdown.is_cancelled() {
        let result = run_clients(&cfg, kafka, &codec, &normalizers, &health, &shutdown).await;
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "normalizer failed; restarting from committed offsets");
            health.failing(PART, format!("{e:#}"));
            metrics::counter!("muster_processor_restarts_total", "processor" => "normalize")
                .increment(1);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
    Ok(())
}

async fn run_clients(
    cfg: &ProcessorsConfig,
    kafka: &KafkaConfig,
    codec: &Codec,
    normalizers: &[Box<dyn Normalizer>],
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let tx = TransactionalLoop::new(kafka, GROUP, &[RawSnapshot::TOPIC], cfg.clone())?;
    health.ready(PART);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = tx.next_batch(Duration::from_secs(1)) => b?,
        };
        if batch.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let mut outputs = Vec::with_capacity(batch.len());
        for record in &batch {
            outputs.push(process(codec, normalizers, record).await?);
        }
        tx.commit(&batch, outputs).await?;
        metrics::counter!("muster_processor_records_in_total", "processor" => "normalize")
            .increment(batch.len() as u64);
        metrics::histogram!("muster_processor_batch_seconds", "processor" => "normalize")
            .record(started.elapsed().as_secs_f64());
    }
}

/// One raw record to one output: its normalized metrics, or a dead letter saying why not.
async fn process(
    codec: &Codec,
    normalizers: &[Box<dyn Normalizer>],
    record: &InRecord,
) -> anyhow::Result<OutRecord> {
    let source = SourceOffset {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
    };
    let raw: RawSnapshot = match codec.decode(&record.payload).await {
        Ok(r) => r,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            let dl = DeadLetter::new(
                "decode",
                e.to_string(),
                source,
                None,
                record.payload.clone(),
            );
            return dead_letter(codec, dl).await;
        }
    };
    match normalize::normalize(normalizers, &raw.data_schema, raw.http_status, &raw.body) {
        Ok(m) => {
            let out = NormalizedMetrics {
                event_id: raw.event_id,
                timestamp: m.timestamp.unwrap_or(raw.fetched_at),
                fetched_at: raw.fetched_at,
                total_registered: m.total_registered,
                current_attendees: m.current_attendees,
                checked_in: m.checked_in,
                checked_out: m.checked_out,
                attendance_rate: m.attendance_rate(),
                status: m.status().to_owned(),
                gate_activity: m.gate_activity,
                alerts: m.alerts,
                source,
            };
            metrics::counter!("muster_processor_records_out_total", "processor" => "normalize")
                .increment(1);
            Ok(OutRecord {
                topic: NormalizedMetrics::TOPIC,
                key: Some(out.event_id.clone()),
                payload: codec.encode(&out).await?,
            })
        }
        Err(e) => {
            tracing::warn!(event_id = %raw.event_id, offset = record.offset, error = %e, "dead-lettered");
            let dl = DeadLetter::new(
                "normalize",
                e.to_string(),
                source,
                Some(raw.event_id),
                raw.body.into_bytes(),
            );
            dead_letter(codec, dl).await
        }
    }
}

async fn dead_letter(codec: &Codec, dl: DeadLetter) -> anyhow::Result<OutRecord> {
    metrics::counter!("muster_dead_letters_total", "stage" => dl.stage.clone()).increment(1);
    Ok(OutRecord {
        topic: DeadLetter::TOPIC,
        key: dl.event_id.clone(),
        payload: codec.encode(&dl).await?,
    })
}
