//! The floor under the pipeline: one record produced and consumed with plain rdkafka on the
//! same broker, at the pipeline's rate, with records of a snapshot's size keyed by event as
//! ingest keys them. The producer has muster's producer settings (idempotent, `acks=all`, zstd,
//! `linger.ms=5`), the consumer muster's consumer settings (`read_committed`), assigned to every
//! partition from the start of a topic of the run's own: no group to join, nothing missed.
//! Each record carries the time it was handed to the producer; its latency runs to the moment
//! the consumer holds it.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::ledger::Latencies;
use super::watch::now_us;
use crate::config::Config;

/// What the round trip showed.
pub struct RoundTrip {
    pub latencies: Latencies,
    pub sent: usize,
    pub rate: f64,
    pub bytes: usize,
}

/// Produces `rate` records/s of `bytes` bytes over `keys` keys for `duration` (the first
/// `warmup` not counted) to the topic `base` under the run's prefix, while consuming them.
pub async fn round_trip(
    cfg: &Config,
    rate: f64,
    bytes: usize,
    keys: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<RoundTrip> {
    let base = "bench.e2e-baseline";
    muster_runtime::topics::ensure(&cfg.kafka, &[base]).await?;
    let topic = cfg.kafka.topics().name(base);
    let consumer: StreamConsumer = cfg
        .kafka
        .consumer("e2e-baseline")
        .create()
        .context("creating the baseline's consumer")?;
    // A topic just created may show no partitions yet: an empty assignment would read nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut assignment = TopicPartitionList::new();
    while assignment.count() == 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the baseline topic {topic} shows no partitions"
        );
        let meta = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .context("reading the baseline topic's partitions")?;
        for p in meta.topics().iter().flat_map(|t| t.partitions()) {
            assignment.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
        }
        if assignment.count() == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    consumer.assign(&assignment)?;

    let counted_from = now_us() + warmup.as_micros() as i64;
    let total = ((warmup + duration).as_secs_f64() * rate) as usize;
    let reading = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(total);
        let mut got = 0;
        while got < total {
            let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
                break;
            };
            let at = now_us();
            let sent = m?
                .payload()
                .and_then(|p| p.get(..8))
                .map(|p| i64::from_le_bytes(p.try_into().expect("8 bytes")));
            got += 1;
            if let Some(sent) = sent.filter(|s| *s >= counted_from) {
                latencies.push((at - sent) as f64 / 1e3);
            }
        }
        Ok::<_, rdkafka::error::KafkaError>(latencies)
    });

    let producer: FutureProducer = cfg.kafka.producer().create()?;
    let keys: Vec<String> = (1..=keys.max(1)).map(|i| format!("bench-{i}")).collect();
    let mut payload = vec![b'x'; bytes.max(8)];
    let started = Instant::now();
    for i in 0..total {
        tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        payload[..8].copy_from_slice(&now_us().to_le_bytes());
        let record = FutureRecord::to(&topic)
            .key(&keys[i % keys.len()])
            .payload(&payload);
        // Delivered in the background; a full queue is a failure of the baseline.
        drop(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .context("producing a baseline record")?,
        );
    }
    producer.flush(Duration::from_secs(30))?;
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = reading.await??;
    anyhow::ensure!(
        !latencies.is_empty(),
        "the baseline's consumer received none of its {total} records"
    );
    Ok(RoundTrip {
        latencies: Latencies::new(latencies),
        sent: total,
        rate: total as f64 / elapsed,
        bytes: payload.len(),
    })
}
