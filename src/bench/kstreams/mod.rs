//! `muster bench kafka-streams`: muster's `normalize` and `gate_throughput_1m` processors
//! against the same two jobs written as a Kafka Streams application (`bench/kafka-streams/`),
//! in the same run, on the same broker and the same input, both under exactly-once, both
//! measured from outside the same way (see [`watch`]): records/s draining a backlog, and
//! end-to-end latency at a steady input rate both sides sustain.

mod java;
mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use muster_processors::Processor;
use muster_processors::normalize::Normalize;
use muster_processors::sql::SqlProcessor;
use muster_schemas::{Codec, DeadLetter, NormalizedMetrics, RawCheckin, RawSnapshot};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

use super::process::{bench_events, checkin, produce, snapshot};
use crate::config::Config;
use crate::simulate::SimEvent;
use java::{Java, SchemaIds};
use watch::{Counts, Plan, Seen, Watch};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Records each side drains in the throughput runs.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Input rate of the latency runs (records/s): below both sides' throughput, so the
    /// latency measured is the pipeline's, not a backlog's.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// Length of each latency run; records sent in its first third are warm-up, not counted.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The Kafka Streams application's Maven project; its jar is built (`mvn -q -B package`)
    /// when missing.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/kafka-streams"))]
    project: PathBuf,
    /// The Java 17 launcher.
    #[arg(long, default_value = "java")]
    java: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Normalize,
    Window,
}

impl Job {
    fn java_name(self) -> &'static str {
        match self {
            Self::Normalize => "normalize",
            Self::Window => "window",
        }
    }

    fn processor(self) -> &'static str {
        match self {
            Self::Normalize => "normalize",
            Self::Window => "gate_throughput_1m",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Muster,
    KafkaStreams,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Muster, Side::KafkaStreams];

    fn name(self) -> &'static str {
        match self {
            Self::Muster => "muster",
            Self::KafkaStreams => "kstreams",
        }
    }

    fn counts(self) -> Counts {
        match self {
            Self::Muster => Counts::Partial,
            Self::KafkaStreams => Counts::Running,
        }
    }
}

/// Every 100th snapshot has a body no normalizer reads and every 100th check-in arrives later
/// than the allowed lateness: both sides dead-letter them, so that path is measured too.
const BAD_EVERY: usize = 100;

fn is_bad(i: usize) -> bool {
    i % BAD_EVERY == BAD_EVERY - 1
}

fn bench_snapshot(events: &[SimEvent], i: usize, at: chrono::DateTime<chrono::Utc>) -> RawSnapshot {
    let mut s = snapshot(events, i, at);
    if is_bad(i) {
        s.body = "<html>502 Bad Gateway</html>".into();
    }
    s
}

fn bench_checkin(events: &[SimEvent], i: usize, at_ms: i64, lateness: Duration) -> RawCheckin {
    let mut c = checkin(events, i, at_ms);
    if is_bad(i) {
        c.received_at = at_ms + lateness.as_millis() as i64 + 60_000;
    }
    c
}

struct Bench {
    cfg: Config,
    codec: Codec,
    run: String,
    events: Vec<SimEvent>,
    normalize: Normalize,
    window: SqlProcessor,
    java: Java,
    /// Normalize's, then the window's.
    ids: [SchemaIds; 2],
}

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let codec = cfg.codec()?;
    let run = format!("{:08x}", rand::random::<u32>());
    let window = muster_processors::sql::load(&cfg.processors)?
        .into_iter()
        .find(|p| p.def.name == Job::Window.processor())
        .context("no SQL processor gate_throughput_1m")?;
    codec.register::<RawSnapshot>().await?;
    codec.register::<RawCheckin>().await?;
    let dead_letter = codec.register::<DeadLetter>().await?;
    let ids = [
        SchemaIds {
            output: codec.register::<NormalizedMetrics>().await?,
            dead_letter,
        },
        SchemaIds {
            output: codec
                .register_schema(window.def.output, window.avro_schema())
                .await?,
            dead_letter,
        },
    ];
    let scratch = std::env::temp_dir().join(format!("muster-bench-kstreams-{run}"));
    std::fs::create_dir_all(&scratch)?;
    let java = Java {
        launcher: args.java.clone(),
        jar: java::jar(&args.project)?,
        bootstrap: cfg.kafka.brokers.clone(),
        registry: cfg.schema_registry.url.clone(),
        allowed_lateness: cfg.processors.allowed_lateness,
        scratch: scratch.clone(),
    };
    let bench = Bench {
        codec,
        run,
        events: bench_events(),
        normalize: Normalize::default(),
        window,
        java,
        ids,
        cfg,
    };
    let result = bench.all(&args).await;
    let cleanup = bench.delete_topics().await;
    let _ = std::fs::remove_dir_all(&scratch);
    let rows = result?;
    cleanup?;
    print(&args, &bench.cfg, &rows);
    Ok(())
}

/// One job's figures on both sides (muster's first): its throughput run and its latency run.
struct Row {
    job: Job,
    drained: [Seen; 2],
    live: [Seen; 2],
}

impl Bench {
    fn topic(&self, what: &str) -> String {
        format!("muster-bench.{}.{what}", self.run)
    }

    fn processor(&self, job: Job) -> &dyn Processor {
        match job {
            Job::Normalize => &self.normalize,
            Job::Window => &self.window,
        }
    }

    fn ids(&self, job: Job) -> &SchemaIds {
        &self.ids[usize::from(job == Job::Window)]
    }

    async fn all(&self, args: &Args) -> anyhow::Result<Vec<Row>> {
        let n = args.records;
        let (snapshots, checkins) = (self.topic("snapshots"), self.topic("checkins"));
        muster_runtime::topics::ensure(&self.cfg.kafka, &[&snapshots, &checkins]).await?;
        eprintln!("producing {n} snapshots and {n} check-ins ...");
        let now = chrono::Utc::now();
        let lateness = self.cfg.processors.allowed_lateness;
        produce(
            &self.cfg,
            &snapshots,
            n,
            |i| {
                bench_snapshot(
                    &self.events,
                    i,
                    now + chrono::Duration::milliseconds(i as i64 * 10),
                )
            },
            &self.codec,
        )
        .await?;
        produce(
            &self.cfg,
            &checkins,
            n,
            |i| {
                bench_checkin(
                    &self.events,
                    i,
                    now.timestamp_millis() + i as i64 * 5,
                    lateness,
                )
            },
            &self.codec,
        )
        .await?;
        let mut rows = Vec::new();
        for (job, input) in [(Job::Normalize, &snapshots), (Job::Window, &checkins)] {
            let mut drained = Vec::new();
            for side in Side::BOTH {
                eprintln!(
                    "{} on {}: draining {n} records ...",
                    job.processor(),
                    side.name()
                );
                drained.push(self.drain(job, side, input, n).await?);
            }
            anyhow::ensure!(
                drained[0].checksum == drained[1].checksum
                    && drained[0].dead_letters == drained[1].dead_letters,
                "{}: the sides disagree on the same input: muster {:?} and {} dead letters, Kafka Streams {:?} and {}",
                job.processor(),
                drained[0].checksum,
                drained[0].dead_letters,
                drained[1].checksum,
                drained[1].dead_letters
            );
            let mut live = Vec::new();
            for side in Side::BOTH {
                eprintln!(
                    "{} on {}: {} s at {} records/s ...",
                    job.processor(),
                    side.name(),
                    args.duration.as_secs(),
                    args.rate
                );
                live.push(self.live(job, side, args).await?);
            }
            let pair = |v: Vec<Seen>| -> [Seen; 2] {
                v.try_into()
                    .unwrap_or_else(|_| unreachable!("one per side"))
            };
            rows.push(Row {
                job,
                drained: pair(drained),
                live: pair(live),
            });
        }
        Ok(rows)
    }

    fn watch(
        &self,
        job: Job,
        side: Side,
        output: &str,
        target: usize,
        plan: Option<Arc<Mutex<Plan>>>,
    ) -> Watch {
        Watch {
            job,
            counts: side.counts(),
            output: output.to_owned(),
            target: target as u64,
            dead_letter_id: self.ids(job).dead_letter,
            plan,
        }
    }

    /// Runs `side`'s `job` over the first `n` records of `input` (a backlog).
    async fn drain(&self, job: Job, side: Side, input: &str, n: usize) -> anyhow::Result<Seen> {
        let output = self.topic(&format!("{}.{}.drained", side.name(), job.java_name()));
        muster_runtime::topics::ensure(&self.cfg.kafka, &[&output]).await?;
        let watch = self
            .watch(job, side, &output, n, None)
            .start(&self.cfg, &self.codec)
            .await?;
        self.run_side(job, side, input, &output, n, watch, async { Ok(()) })
            .await
    }

    /// Runs `side`'s `job` while records arrive at `args.rate` for `args.duration`.
    async fn live(&self, job: Job, side: Side, args: &Args) -> anyhow::Result<Seen> {
        let input = self.topic(&format!("{}.{}.live-in", side.name(), job.java_name()));
        let output = self.topic(&format!("{}.{}.live-out", side.name(), job.java_name()));
        muster_runtime::topics::ensure(&self.cfg.kafka, &[&input, &output]).await?;
        let n = (args.rate as f64 * args.duration.as_secs_f64()) as usize;
        let plan = Arc::new(Mutex::new(Plan::default()));
        let watch = self
            .watch(job, side, &output, n, Some(plan.clone()))
            .start(&self.cfg, &self.codec)
            .await?;
        let lateness = self.cfg.processors.allowed_lateness;
        let (cfg, codec, events, topic) = (&self.cfg, &self.codec, &self.events, input.clone());
        let warm_up = args.duration / 3;
        let producing = async move {
            plan.lock().expect("poisoned").counted_from_ms =
                (chrono::Utc::now() + warm_up).timestamp_millis();
            match job {
                Job::Normalize => {
                    watch::produce_paced(cfg, codec, &topic, n, args.rate, |i, now| {
                        let at = chrono::DateTime::from_timestamp_millis(now).expect("a time");
                        bench_snapshot(events, i, at)
                    })
                    .await
                }
                Job::Window => {
                    watch::produce_paced(cfg, codec, &topic, n, args.rate, |i, now| {
                        let c = bench_checkin(events, i, now, lateness);
                        if !is_bad(i) {
                            plan.lock()
                                .expect("poisoned")
                                .windows
                                .entry(watch::window_key(&c.event_id, &c.gate_id, c.scanned_at))
                                .or_default()
                                .push_back(c.scanned_at);
                        }
                        c
                    })
                    .await
                }
            }
        };
        self.run_side(job, side, &input, &output, n, watch, producing)
            .await
    }

    /// Starts `side` on `input`, then runs `producing` (nothing for a backlog), and returns
    /// what the watcher saw once `n` input records were covered.
    #[allow(clippy::too_many_arguments)]
    async fn run_side(
        &self,
        job: Job,
        side: Side,
        input: &str,
        output: &str,
        n: usize,
        watch: tokio::task::JoinHandle<anyhow::Result<Seen>>,
        producing: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<Seen> {
        let me = std::process::id();
        let cpu_before = super::cpu_seconds(me)?;
        match side {
            Side::Muster => {
                let drain = muster_processors::drain::drain(
                    self.processor(job),
                    &self.cfg.kafka,
                    &self.codec,
                    &self.cfg.processors,
                    input,
                    output,
                    n,
                );
                let (drained, produced) = tokio::join!(drain, producing);
                produced?;
                drained?;
                let mut seen = watch.await??;
                seen.cpu_s = super::cpu_seconds(me)? - cpu_before;
                Ok(seen)
            }
            Side::KafkaStreams => {
                // The application id names Kafka Streams' internal topics: under the run's prefix.
                let phase = output.rsplit('.').next().unwrap_or_default();
                let name = self.topic(&format!("kstreams-app.{}.{phase}", job.java_name()));
                let mut app = self.java.start(job, &name, input, output, self.ids(job))?;
                app.running().await?;
                // From RUNNING on: the JVM's start is not counted, its warm-up (JIT) is.
                let jvm_before = super::cpu_seconds(app.pid())?;
                producing.await?;
                let mut watch = watch;
                loop {
                    if let Ok(seen) = tokio::time::timeout(Duration::from_secs(1), &mut watch).await
                    {
                        let mut seen = seen??;
                        seen.cpu_s = super::cpu_seconds(me)? - cpu_before
                            + super::cpu_seconds(app.pid())?
                            - jvm_before;
                        return Ok(seen);
                    }
                    anyhow::ensure!(
                        app.alive(),
                        "the Kafka Streams application stopped; its log:\n{}",
                        app.log_tail()
                    );
                }
            }
        }
    }

    /// Every topic of the run, Kafka Streams' internal ones (named after its application ids)
    /// too.
    async fn delete_topics(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.cfg.kafka.client().create()?;
        let prefix = self.topic("");
        let meta = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .context("listing the benchmark's topics")?;
        let topics: Vec<String> = meta
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|t| t.starts_with(&prefix))
            .collect();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !names.is_empty() {
            admin
                .delete_topics(&names, &AdminOptions::new())
                .await
                .context("deleting the benchmark topics")?;
        }
        Ok(())
    }
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

fn print(args: &Args, cfg: &Config, rows: &[Row]) {
    println!(
        "muster bench kafka-streams: {} records per throughput run; latency runs of {} s at {} records/s, the first third not counted",
        args.records,
        args.duration.as_secs(),
        args.rate
    );
    println!(
        "  muster: batches of {} records or {} ms, one transaction each; Kafka Streams: exactly_once_v2, its defaults (a commit every 100 ms)",
        cfg.processors.batch_max_records,
        cfg.processors.batch_max_wait.as_millis()
    );
    println!(
        "  {:<20} {:<22} {:>14} {:>14} {:>10}",
        "job", "measure", "muster", "Kafka Streams", "muster/KS"
    );
    let line = |name: &str, what: &str, m: f64, k: f64| {
        let digits: usize = if m < 10.0 { 2 } else { 0 };
        println!(
            "  {name:<20} {what:<22} {m:>14.digits$} {k:>14.digits$} {:>9.2}x",
            m / k
        );
    };
    let lat = |s: &Seen, p: f64| {
        let mut v = s.latencies_ms.clone();
        v.sort_unstable();
        percentile(&v, p)
    };
    for r in rows {
        let name = r.job.processor();
        let [m, k] = &r.drained;
        line(name, "records/s", m.records_per_s, k.records_per_s);
        line(
            name,
            "records/s, second half",
            m.second_half_per_s,
            k.second_half_per_s,
        );
        let per_10k = |s: &Seen| s.cpu_s * 10_000.0 / args.records as f64;
        line(name, "CPU s / 10k records", per_10k(m), per_10k(k));
        let [lm, lk] = &r.live;
        line(name, "end-to-end p50 (ms)", lat(lm, 0.5), lat(lk, 0.5));
        line(name, "end-to-end p99 (ms)", lat(lm, 0.99), lat(lk, 0.99));
        println!(
            "  {name:<20} {:<22} {:>14} {:>14}",
            "dead letters (of all)", m.dead_letters, k.dead_letters
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert!(percentile(&[], 0.99).is_nan());
    }

    #[test]
    fn windows_start_on_the_minute_as_date_bin_and_kafka_streams_do() {
        let (_, _, start) = watch::window_key("e", "G1", 1_795_482_959_999);
        assert_eq!(start, 1_795_482_900_000);
        let (_, _, start) = watch::window_key("e", "G1", 1_795_482_960_000);
        assert_eq!(start, 1_795_482_960_000);
    }

    #[test]
    fn one_record_in_a_hundred_is_bad_on_both_inputs() {
        assert_eq!((0..10_000).filter(|&i| is_bad(i)).count(), 100);
        let events = bench_events();
        let late = bench_checkin(&events, 99, 1_795_482_900_000, Duration::from_secs(300));
        assert!(late.received_at - late.scanned_at > 300_000);
        let on_time = bench_checkin(&events, 98, 1_795_482_900_000, Duration::from_secs(300));
        assert_eq!(on_time.received_at - on_time.scanned_at, 800);
    }
}
