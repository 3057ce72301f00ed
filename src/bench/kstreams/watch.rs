//! Measuring a side from outside, identically for both: a `read_committed` consumer of the
//! side's output topic (assigned, not in a group, so it reads from the first moment) notes when
//! each output becomes visible and how many input records it accounts for ("covers"):
//!
//! - a normalized record or a dead letter covers one input record;
//! - a gate window row covers the check-ins counted in it: muster writes partial counts per
//!   micro-batch (summed here, as the projection does), Kafka Streams the window's running
//!   total (the latest replaces the previous).
//!
//! Records/s is the input covered between the first and the last visible output divided by
//! the time between them (start-up before the first output is not counted on either side);
//! also over the second half of the input alone (from the output that covered half of it).
//! End-to-end latency of an input record is from the time stamped in it when the bench handed
//! it to its producer (`fetchedAt`, `scannedAt`) until the first visible output covering it,
//! both read from the same wall clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_projections::series::GateWindow;
use muster_schemas::{Codec, NormalizedMetrics, TopicRecord};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::Job;
use crate::config::Config;

/// How a side writes its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// Partial counts per batch (muster), summed.
    Partial,
    /// The window's running total (Kafka Streams), replaced.
    Running,
}

type WindowKey = (String, String, i64);

/// What the latency runs' producer sent and when: the watcher looks up check-ins here.
#[derive(Default)]
pub struct Plan {
    /// Records sent before this time (ms) are warm-up: their latency is not counted.
    pub counted_from_ms: i64,
    /// Send times of each window's on-time check-ins, in order.
    pub windows: HashMap<WindowKey, VecDeque<i64>>,
}

pub fn window_key(event_id: &str, gate_id: &str, scanned_at: i64) -> WindowKey {
    (
        event_id.to_owned(),
        gate_id.to_owned(),
        scanned_at - scanned_at.rem_euclid(60_000),
    )
}

/// What a side's outputs showed.
#[derive(Debug, Default)]
pub struct Seen {
    pub records_per_s: f64,
    /// Over the second half of the input only: the steady state, after a JVM's warm-up.
    pub second_half_per_s: f64,
    pub latencies_ms: Vec<i64>,
    pub dead_letters: u64,
    /// Normalize: the sum of `currentAttendees`; window: entries and exits at the end. Both
    /// sides must agree on the same input.
    pub checksum: (i64, i64),
    /// CPU seconds of the side's processes (for muster the bench's own, which reads the
    /// outputs on both sides; for Kafka Streams the JVM's from RUNNING on and the bench's), not
    /// the broker's.
    pub cpu_s: f64,
}

pub struct Watch {
    pub job: Job,
    pub counts: Counts,
    pub output: String,
    pub target: u64,
    pub dead_letter_id: u32,
    /// Latency runs only.
    pub plan: Option<Arc<Mutex<Plan>>>,
}

impl Watch {
    /// Assigns the consumer to every partition of the output from the beginning; returns once
    /// it is ready, with the task that reads until `target` input records are covered.
    pub async fn start(
        self,
        cfg: &Config,
        codec: &Codec,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Seen>>> {
        let mut kafka = cfg.kafka.clone();
        kafka
            .options
            .insert("fetch.wait.max.ms".into(), "20".into());
        let consumer: StreamConsumer = kafka
            .consumer(&format!("bench.watch.{:08x}", rand::random::<u32>()))
            .create()?;
        let meta = consumer
            .fetch_metadata(Some(&self.output), Duration::from_secs(10))
            .with_context(|| format!("reading the partitions of {}", self.output))?;
        let mut tpl = TopicPartitionList::new();
        for p in meta.topics().iter().flat_map(|t| t.partitions()) {
            tpl.add_partition_offset(&self.output, p.id(), Offset::Beginning)?;
        }
        anyhow::ensure!(tpl.count() > 0, "{} has no partitions", self.output);
        consumer.assign(&tpl)?;
        let codec = codec.clone();
        Ok(tokio::spawn(
            async move { self.read(consumer, codec).await },
        ))
    }

    async fn read(self, consumer: StreamConsumer, codec: Codec) -> anyhow::Result<Seen> {
        let mut seen = Seen::default();
        let mut covered = 0u64;
        let mut first: Option<(Instant, u64)> = None;
        let mut last = None;
        let mut half = None;
        let mut windows: HashMap<WindowKey, (i64, i64)> = HashMap::new();
        while covered < self.target {
            let msg = tokio::time::timeout(Duration::from_secs(90), consumer.recv())
                .await
                .with_context(|| {
                    format!(
                        "no output on {} for 90 s after {covered} of {} input records",
                        self.output, self.target
                    )
                })??;
            let (at, now_ms) = (Instant::now(), chrono::Utc::now().timestamp_millis());
            let payload = msg.payload().unwrap_or_default();
            let schema = payload
                .get(1..5)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
            let before = covered;
            if schema == Some(self.dead_letter_id) {
                seen.dead_letters += 1;
                covered += 1;
            } else {
                match self.job {
                    Job::Normalize => {
                        let m: NormalizedMetrics = codec.decode(payload).await?;
                        seen.checksum.0 += m.current_attendees;
                        covered += 1;
                        if let Some(plan) = &self.plan
                            && m.fetched_at >= plan.lock().expect("poisoned").counted_from_ms
                        {
                            seen.latencies_ms.push(now_ms - m.fetched_at);
                        }
                    }
                    Job::Window => {
                        let w = GateWindow::from_avro(codec.decode_any(payload).await?)
                            .map_err(|e| anyhow::anyhow!("a gate window row: {e}"))?;
                        let key = (w.event_id, w.gate_id, w.window_start);
                        let counts = windows.entry(key.clone()).or_default();
                        let was = counts.0 + counts.1;
                        match self.counts {
                            Counts::Partial => *counts = (counts.0 + w.entries, counts.1 + w.exits),
                            Counts::Running => *counts = (w.entries, w.exits),
                        }
                        let now = counts.0 + counts.1;
                        anyhow::ensure!(now >= was, "window {key:?} went back from {was} to {now}");
                        covered += (now - was) as u64;
                        if let Some(plan) = &self.plan {
                            let mut plan = plan.lock().expect("poisoned");
                            let from = plan.counted_from_ms;
                            let sent = plan.windows.entry(key).or_default();
                            for _ in was..now {
                                let t = sent
                                    .pop_front()
                                    .context("a window counted more check-ins than were sent")?;
                                if t >= from {
                                    seen.latencies_ms.push(now_ms - t);
                                }
                            }
                        }
                    }
                }
            }
            if covered > before {
                first.get_or_insert((at, covered));
                last = Some((at, covered));
                if covered * 2 >= self.target {
                    half.get_or_insert((at, covered));
                }
            }
        }
        if self.job == Job::Window {
            seen.checksum = windows
                .values()
                .fold((0, 0), |(i, o), (e, x)| (i + e, o + x));
        }
        let rate = |(t0, c0): (Instant, u64), (t1, c1): (Instant, u64)| {
            (c1 - c0) as f64 / (t1 - t0).as_secs_f64().max(1e-9)
        };
        let last = last.context("no output")?;
        seen.records_per_s = rate(first.context("no output")?, last);
        seen.second_half_per_s = rate(half.context("no output")?, last);
        Ok(seen)
    }
}

/// Sends `n` records to `topic` at `rate` per second, each made (and stamped) when it is due.
pub async fn produce_paced<R: TopicRecord>(
    cfg: &Config,
    codec: &Codec,
    topic: &str,
    n: usize,
    rate: u32,
    mut make: impl FnMut(usize, i64) -> R,
) -> anyhow::Result<()> {
    let producer: FutureProducer = cfg.kafka.producer().create()?;
    let start = Instant::now();
    let mut pending = Vec::new();
    let mut i = 0;
    while i < n {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(n);
        while i < due {
            let r = make(i, chrono::Utc::now().timestamp_millis());
            let payload = codec.encode(&r).await?;
            let record = FutureRecord::to(topic)
                .key(r.key().unwrap_or_default())
                .payload(&payload);
            pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for d in pending {
        d.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}
