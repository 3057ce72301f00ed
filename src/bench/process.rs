use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_processors::Processor;
use muster_schemas::{Codec, Direction, RawCheckin, RawSnapshot, SnapshotSource, TopicRecord};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::Config;
use crate::simulate::SimEvent;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Records through each side of each comparison.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
}

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let n = args.records;
    let codec = cfg.codec()?;
    let run = format!("{:08x}", rand::random::<u32>());
    let snapshots = format!("muster-bench.{run}.snapshots");
    let checkins = format!("muster-bench.{run}.checkins");
    let out = format!("muster-bench.{run}.out");
    muster_runtime::topics::ensure(&cfg.kafka, &[&snapshots, &checkins, &out]).await?;
    codec.register::<RawSnapshot>().await?;
    codec.register::<RawCheckin>().await?;

    eprintln!("producing {n} snapshots and {n} check-ins ...");
    let events = bench_events();
    let now = chrono::Utc::now();
    produce(
        &cfg,
        &snapshots,
        n,
        |i| {
            snapshot(
                &events,
                i,
                now + chrono::Duration::milliseconds(i as i64 * 10),
            )
        },
        &codec,
    )
    .await?;
    produce(
        &cfg,
        &checkins,
        n,
        |i| checkin(&events, i, now.timestamp_millis() + i as i64 * 5),
        &codec,
    )
    .await?;

    let registry = muster_processors::registry(&cfg.processors)?;
    let find = |name: &str| -> anyhow::Result<Arc<dyn Processor>> {
        registry
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no processor {name}"))
    };
    let normalize = find("normalize")?;
    let window = find("gate_throughput_1m")?;

    let (raw_snap, norm) =
        against_raw(&cfg, &codec, normalize.as_ref(), &snapshots, &out, n).await?;
    let (raw_check, win) = against_raw(&cfg, &codec, window.as_ref(), &checkins, &out, n).await?;

    let (norm_split, win_split) = (norm, win);
    let (norm, win) = (norm.total, win.total);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "muster bench process ({n} records each, batches of {})",
        cfg.processors.batch_max_records
    );
    println!(
        "  raw consume→produce, snapshots       {:>10.0} records/s",
        rate(raw_snap)
    );
    println!(
        "  normalize (exactly-once)             {:>10.0} records/s  {:>5.1} % of raw",
        rate(norm),
        100.0 * raw_snap.as_secs_f64() / norm.as_secs_f64()
    );
    println!(
        "  raw consume→produce, check-ins       {:>10.0} records/s",
        rate(raw_check)
    );
    println!(
        "  gate_throughput_1m (exactly-once)    {:>10.0} records/s  {:>5.1} % of raw",
        rate(win),
        100.0 * raw_check.as_secs_f64() / win.as_secs_f64()
    );
    for (name, d) in [("normalize", norm_split), ("gate_throughput_1m", win_split)] {
        let share = |x: Duration| 100.0 * x.as_secs_f64() / d.total.as_secs_f64();
        println!(
            "  {name}: {:.0} % of its time processing, {:.0} % producing and committing, {:.0} % reading",
            share(d.processing),
            share(d.committing),
            (100.0 - share(d.processing) - share(d.committing)).max(0.0)
        );
    }

    let admin: AdminClient<DefaultClientContext> = cfg.kafka.client().create()?;
    admin
        .delete_topics(&[&snapshots, &checkins, &out], &AdminOptions::new())
        .await
        .context("deleting the benchmark topics")?;
    Ok(())
}

/// The simulated events the benchmark records are about.
pub(super) fn bench_events() -> Vec<SimEvent> {
    (0..50).map(|i| SimEvent::nth("bench-", i, 600.0)).collect()
}

/// The `i`-th benchmark snapshot, fetched `at`.
pub(super) fn snapshot(
    events: &[SimEvent],
    i: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> RawSnapshot {
    let e = &events[i % events.len()];
    RawSnapshot {
        event_id: e.id.clone(),
        service_name: "bench".into(),
        source: SnapshotSource::Poll,
        data_schema: "s-attend/v1".into(),
        fetched_at: at.timestamp_millis(),
        http_status: 200,
        body: e.snapshot(at).to_string(),
        capacity: None,
    }
}

/// The `i`-th benchmark check-in, scanned at `at_ms` and received 800 ms later.
pub(super) fn checkin(events: &[SimEvent], i: usize, at_ms: i64) -> RawCheckin {
    RawCheckin {
        event_id: events[i % events.len()].id.clone(),
        gate_id: format!("G{}", i % 4 + 1),
        participant: format!("{:064x}", i),
        direction: if i.is_multiple_of(3) {
            Direction::Out
        } else {
            Direction::In
        },
        scanned_at: at_ms,
        received_at: at_ms + 800,
        delivery_id: "bench".into(),
    }
}

pub(super) async fn produce<R: TopicRecord>(
    cfg: &Config,
    topic: &str,
    n: usize,
    make: impl Fn(usize) -> R,
    codec: &Codec,
) -> anyhow::Result<()> {
    let producer: FutureProducer = cfg.kafka.producer().create()?;
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..n {
        let r = make(i);
        let payload = codec.encode(&r).await?;
        let key = r.key().unwrap_or_default().to_owned();
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&key).payload(&payload)) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        if pending.len() == 10_000 {
            for d in pending.drain(..) {
                d.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for d in pending.drain(..) {
        d.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// The stage's limit: bytes in, the same bytes out, in batches, offsets committed after.
/// The raw consume → produce loop over `n` records of `input`, then `p` over the same records.
async fn against_raw(
    cfg: &Config,
    codec: &Codec,
    p: &dyn Processor,
    input: &str,
    output: &str,
    n: usize,
) -> anyhow::Result<(Duration, muster_processors::drain::Drained)> {
    eprintln!("raw consume → produce loop over {input} ...");
    let raw = copy_loop(cfg, input, output, n).await?;
    eprintln!("{} ...", p.name());
    let drained =
        muster_processors::drain::drain(p, &cfg.kafka, codec, &cfg.processors, input, output, n)
            .await?;
    Ok((raw, drained))
}

async fn copy_loop(cfg: &Config, input: &str, output: &str, n: usize) -> anyhow::Result<Duration> {
    let mut kafka = cfg.kafka.clone();
    kafka.auto_offset_reset = muster_runtime::config::OffsetReset::Earliest;
    let consumer: StreamConsumer = kafka
        .consumer(&format!("bench.copy.{:08x}", rand::random::<u32>()))
        .create()?;
    consumer.subscribe(&[input])?;
    let producer: FutureProducer = kafka.producer().create()?;
    let mut done = 0;
    let mut started = None;
    while done < n {
        let mut pending = Vec::with_capacity(cfg.processors.batch_max_records);
        while pending.len() < cfg.processors.batch_max_records && done + pending.len() < n {
            let wait = if pending.is_empty() {
                Duration::from_secs(10)
            } else {
                Duration::from_millis(50)
            };
            let Ok(msg) = tokio::time::timeout(wait, consumer.recv()).await else {
                break;
            };
            let msg = msg?;
            started.get_or_insert_with(Instant::now);
            let record = FutureRecord::to(output)
                .payload(msg.payload().unwrap_or_default())
                .key(msg.key().unwrap_or_default());
            pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
        }
        anyhow::ensure!(!pending.is_empty(), "no input after {done} of {n} records");
        done += pending.len();
        for d in pending {
            d.await?.map_err(|(e, _)| e)?;
        }
        consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Async)?;
    }
    Ok(started.map(|s| s.elapsed()).unwrap_or_default())
}
