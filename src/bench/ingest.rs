use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_schemas::{RawSnapshot, SnapshotSource};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::Config;
use crate::simulate;

/// Where both sides of the benchmark write; `muster.*` topics stay untouched.
const BENCH_TOPIC: &str = "muster-bench.snapshots";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Simulated services polled at once.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Poll interval of every service.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How long to measure each side.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let codec = cfg.codec()?;
    let mut collector = muster_ingest::collector(&cfg.kafka, codec.clone(), &cfg.ingest).await?;
    // Benchmark records never enter the event log.
    muster_runtime::topics::ensure(&cfg.kafka, &[BENCH_TOPIC]).await?;
    collector.topic_override = Some(BENCH_TOPIC.into());

    // The simulated services, in this process, on a free loopback port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let stop = muster_runtime::Shutdown::new();
    let sim_args = simulate::Args::for_bench(args.services, addr);
    let registrations = sim_args.registrations(&format!("http://{addr}"));
    tokio::spawn(simulate::run(sim_args, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!(
        "ingest: {} services every {:?} for {:?} ...",
        args.services, args.interval, args.duration
    );
    let published = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut svc) in registrations.into_iter().enumerate() {
        svc.sync_settings.interval = args.interval.as_secs().max(1);
        let (collector, published, failed, late) = (
            collector.clone(),
            published.clone(),
            failed.clone(),
            late.clone(),
        );
        let phase = args.interval.mul_f64(i as f64 / args.services as f64);
        let interval = args.interval;
        tasks.spawn(async move {
            let mut next = Instant::now() + phase;
            while next < deadline {
                tokio::time::sleep_until(next.into()).await;
                if next.elapsed() > Duration::from_millis(100) {
                    late.fetch_add(1, Ordering::Relaxed);
                }
                match collector.collect_once(&svc, SnapshotSource::Poll).await {
                    Ok(_) => published.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                next += interval;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingest_rate = published.load(Ordering::Relaxed) as f64 / ingest_secs;
    let target = args.services as f64 / args.interval.as_secs_f64();
    stop.cancel();

    // Baseline: Kafka's producer alone, same configuration, same record size, flat out.
    let sample = collector.codec.encode(&sample_snapshot()).await?;
    let producer: FutureProducer = cfg.kafka.producer().create()?;
    eprintln!(
        "baseline: producing {}-byte records flat out for {:?} ...",
        sample.len(),
        args.duration
    );
    let started = Instant::now();
    let mut sent = 0u64;
    let mut inflight = Vec::with_capacity(10_000);
    while started.elapsed() < args.duration {
        let record = FutureRecord::to(BENCH_TOPIC).key("bench").payload(&sample);
        match producer.send_result(record) {
            Ok(d) => {
                inflight.push(d);
                sent += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
        if inflight.len() >= 10_000 {
            for d in inflight.drain(..) {
                d.await.context("delivery dropped")?.map_err(|(e, _)| e)?;
            }
        }
    }
    for d in inflight.drain(..) {
        d.await.context("delivery dropped")?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    let baseline_rate = sent as f64 / started.elapsed().as_secs_f64();

    println!(
        "muster bench ingest ({} services, {:?} interval, {:?})",
        args.services, args.interval, args.duration
    );
    println!("  target rate (services / interval)   {target:>10.0} snapshots/s");
    println!(
        "  muster ingest: poll + publish       {ingest_rate:>10.0} snapshots/s  ({} published, {} failed, {} polls started >100 ms late)",
        published.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed)
    );
    println!(
        "  baseline: Kafka producer alone      {baseline_rate:>10.0} records/s ({} bytes each)",
        sample.len()
    );
    println!(
        "  ingest / target                     {:>10.2}",
        ingest_rate / target
    );
    println!(
        "  ingest / producer baseline          {:>10.3}",
        ingest_rate / baseline_rate
    );
    Ok(())
}

/// A snapshot of realistic size, as the simulator serves it.
fn sample_snapshot() -> RawSnapshot {
    let event = simulate::SimEvent::nth("bench-", 0, 600.0);
    RawSnapshot {
        event_id: event.id.clone(),
        service_name: "muster-simulator".into(),
        source: SnapshotSource::Poll,
        data_schema: "s-attend/v1".into(),
        fetched_at: muster_schemas::records::now_millis(),
        http_status: 200,
        body: event.snapshot(chrono::Utc::now()).to_string(),
        capacity: None,
    }
}
