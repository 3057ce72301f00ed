//! `muster bench …`: throughput measured against a baseline taken in the same run, so the
//! figures mean something on whatever machine runs them.

mod analytics;
mod api;
mod e2e;
mod ingest;
mod kstreams;
mod process;
mod project;
mod stream;
mod webhooks;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum Bench {
    /// Snapshots/s collected from N simulated services and published to Kafka, against
    /// Kafka's own producer rate for messages of the same size.
    Ingest(ingest::Args),
    /// Records/s of the normalizer and a windowed SQL processor, each against a raw
    /// consume→produce loop over the same records on the same broker.
    Process(process::Args),
    /// Records/s and end-to-end latency of the normalizer and the gate window processor
    /// against the same jobs as a Kafka Streams application (bench/kafka-streams/), same run,
    /// same broker, same input.
    KafkaStreams(kstreams::Args),
    /// Records/s the projections apply to PostgreSQL against a plain COPY of the same rows,
    /// and a replay's records/s against the live loop's over the same topic.
    Project(project::Args),
    /// Requests/s and p99 of the partner attendance endpoint with a valid key, against a warp
    /// hello-world driven the same way in the same run.
    Api(api::Args),
    /// Signed webhook deliveries/s to a loopback receiver against a plain unsigned POST loop
    /// to the same receiver in the same run.
    Webhooks(webhooks::Args),
    /// Commit-to-client latency (p50/p99) and API CPU per subscriber of N partner SSE
    /// subscribers, against N clients polling the same process for the same updates.
    Stream(stream::Args),
    /// Rows/s of the attendance pattern query over a generated Parquet archive, against a
    /// plain DataFusion COUNT(*)/GROUP BY scan of the same files in the same run.
    Analytics(analytics::Args),
    /// End-to-end freshness: p50/p99 from the simulated upstream's answer to the realtime row
    /// in PostgreSQL and to the API's answer, and the snapshots/s sustained, at N services
    /// through ingest, processors, projections and the API, against a plain Kafka
    /// produce→consume round trip on the same broker at the same rate.
    E2e(e2e::Args),
}

pub async fn run(bench: Bench, mut cfg: Config) -> anyhow::Result<()> {
    // Benchmarks seed and read back their own throwaway data: the development key is enough
    // when no key is configured.
    cfg.security.development = true;
    // Benchmark topics are named per run already, and the benchmarks name them unprefixed.
    cfg.kafka.topic_prefix.clear();
    match bench {
        Bench::Ingest(args) => ingest::run(args, cfg).await,
        Bench::Process(args) => process::run(args, cfg).await,
        Bench::KafkaStreams(args) => kstreams::run(args, cfg).await,
        Bench::Project(args) => project::run(args, cfg).await,
        Bench::Api(args) => api::run(args, cfg).await,
        Bench::Webhooks(args) => webhooks::run(args, cfg).await,
        Bench::Stream(args) => stream::run(args, cfg).await,
        Bench::Analytics(args) => analytics::run(args, cfg).await,
        Bench::E2e(args) => e2e::run(args, cfg).await,
    }
}

/// Seconds of CPU (user + system) process `pid` has used so far, from `/proc`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("a /proc stat line")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // The kernel reports in USER_HZ, 100 on Linux.
    Ok(ticks as f64 / 100.0)
}
