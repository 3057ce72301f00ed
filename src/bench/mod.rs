//! `muster bench …`: throughput measured against a baseline taken in the same run, so the
//! figures mean something on whatever machine runs them.

mod analytics;
mod api;
mod ingest;
mod process;
mod project;
mod stream;
mod webhooks;

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
        Bench::Project(args) => project::run(args, cfg).await,
        Bench::Api(args) => api::run(args, cfg).await,
        Bench::Webhooks(args) => webhooks::run(args, cfg).await,
        Bench::Stream(args) => stream::run(args, cfg).await,
        Bench::Analytics(args) => analytics::run(args, cfg).await,
    }
}
