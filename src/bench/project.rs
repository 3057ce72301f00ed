//! `muster bench project`: rows/s the projections apply to PostgreSQL (decode, merge, upsert,
//! offsets, one transaction per batch) against a plain binary COPY of the same rows, and a
//! replay's throughput against the live loop's, both reading the same records from Kafka.

use std::time::{Duration, Instant};

use anyhow::Context;
use muster_projections::replay::{Mode, Replay};
use muster_projections::{Applier, Projection};
use muster_runtime::batch::{InRecord, gather};
use muster_schemas::{Codec, NormalizedMetrics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Normalized records through each side of each comparison.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
}

fn record(i: usize, start: i64) -> NormalizedMetrics {
    let current = ((i * 7919) % 1000) as i64;
    let at = start + i as i64 * 100;
    NormalizedMetrics {
        capacity: Some(1200),
        ..NormalizedMetrics::live(&format!("bench-{}", i % 50), at, 1000, current, i as i64)
    }
}

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let n = args.records;
    let codec = cfg.codec()?;
    let pool = cfg.database.pool()?;
    {
        let mut client = pool.get().await.context("connecting to PostgreSQL")?;
        muster_projections::migrate(&mut client).await?;
    }
    let run = format!("{:08x}", rand::random::<u32>());
    let topic = format!("muster-bench.{run}.normalized");
    muster_runtime::topics::ensure(&cfg.kafka, &[&topic]).await?;
    codec.register::<NormalizedMetrics>().await?;
    let start = chrono::Utc::now().timestamp_millis() - n as i64 * 100;
    let records: Vec<NormalizedMetrics> = (0..n).map(|i| record(i, start)).collect();

    eprintln!("COPY of {n} rows ...");
    let schema = format!("bench_{run}");
    let client = pool.get().await?;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.copied (event_id text, observed_at timestamptz,
                current_attendees bigint, total_registered bigint, attendance_rate float8)"
        ))
        .await?;
    let copy_time = {
        let started = Instant::now();
        let sink = client
            .copy_in(&format!("COPY {schema}.copied FROM STDIN BINARY"))
            .await?;
        let writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::INT8,
                Type::INT8,
                Type::FLOAT8,
            ],
        );
        let mut writer = std::pin::pin!(writer);
        for r in &records {
            let at = chrono::DateTime::from_timestamp_millis(r.timestamp).unwrap_or_default();
            writer
                .as_mut()
                .write(&[
                    &r.event_id,
                    &at,
                    &r.current_attendees,
                    &r.total_registered,
                    &r.attendance_rate,
                ])
                .await?;
        }
        writer.finish().await?;
        started.elapsed()
    };

    eprintln!("projections applying {n} records ...");
    let mut payloads = Vec::with_capacity(n);
    for r in &records {
        payloads.push(codec.encode(r).await?);
    }
    let mut applied = Vec::new();
    for p in [
        muster_projections::find("event_series")?,
        muster_projections::find("event_realtime")?,
    ] {
        let target = format!("{schema}_{}", p.name());
        client
            .batch_execute(&format!("CREATE SCHEMA {target}"))
            .await?;
        for step in muster_projections::steps(p.as_ref(), &target) {
            client.batch_execute(&step).await?;
        }
        let key = format!("bench:{run}:{}", p.name());
        let applier = Applier {
            projection: p.as_ref(),
            codec: &codec,
            offsets_key: &key,
            schema: &target,
            announce: false,
            durable: true,
        };
        let started = Instant::now();
        for (b, chunk) in payloads
            .chunks(cfg.projections.batch_max_records)
            .enumerate()
        {
            let batch: Vec<InRecord> = chunk
                .iter()
                .enumerate()
                .map(|(i, payload)| InRecord {
                    topic: topic.clone(),
                    partition: 0,
                    offset: (b * cfg.projections.batch_max_records + i) as i64,
                    key: None,
                    payload: payload.clone(),
                })
                .collect();
            applier.apply(&pool, batch).await?;
        }
        applied.push((p.name(), started.elapsed()));
        client
            .execute(
                "DELETE FROM projection_offsets WHERE projection = $1",
                &[&key],
            )
            .await?;
    }

    eprintln!("producing {n} records to {topic} ...");
    super::process::produce(&cfg, &topic, n, |i| records[i].clone(), &codec).await?;
    let series = muster_projections::find("event_series")?;
    eprintln!("live loop over {topic} ...");
    let live = live_loop(&cfg, &pool, &codec, series.as_ref(), &topic, &schema, n).await?;
    eprintln!("replay of {topic} ...");
    let report = Replay {
        projection: series.as_ref(),
        kafka: &cfg.kafka,
        codec: &codec,
        pool: &pool,
        cfg: &cfg.projections,
        mode: Mode::Discard,
        accept_truncated: true,
        topics: Some(vec![topic.clone()]),
    }
    .run(|_| {})
    .await?;

    client
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE; DROP SCHEMA {schema}_event_series CASCADE;
             DROP SCHEMA {schema}_event_realtime CASCADE; DROP SCHEMA {schema}_live CASCADE"
        ))
        .await?;
    client
        .execute(
            "DELETE FROM projection_offsets WHERE projection LIKE 'bench%' || $1 || '%'",
            &[&run],
        )
        .await?;

    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        cfg.kafka.client().create()?;
    admin
        .delete_topics(&[&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .context("deleting the benchmark topic")?;

    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let copy_rate = rate(copy_time);
    println!(
        "muster bench project ({n} records, batches of {})",
        cfg.projections.batch_max_records
    );
    println!(
        "  plain binary COPY of the rows          {:>9.0} rows/s",
        copy_rate
    );
    for (name, d) in &applied {
        println!(
            "  {:<38} {:>9.0} records/s {:>6.1} % of COPY",
            format!("projection {name} (no Kafka)"),
            rate(*d),
            100.0 * rate(*d) / copy_rate
        );
    }
    let live_rate = rate(live);
    let replay_rate = rate(report.elapsed);
    println!(
        "  live loop, event_series (from Kafka)   {:>9.0} records/s",
        live_rate
    );
    println!(
        "  replay, event_series (from Kafka)      {:>9.0} records/s {:>6.1} % of live",
        replay_rate,
        100.0 * replay_rate / live_rate
    );
    Ok(())
}

/// The live worker's loop (consumer group, batches, one transaction each) over `topic` until
/// `n` records are applied.
async fn live_loop(
    cfg: &Config,
    pool: &deadpool_postgres::Pool,
    codec: &Codec,
    p: &dyn Projection,
    topic: &str,
    schema: &str,
    n: usize,
) -> anyhow::Result<Duration> {
    let target = format!("{schema}_live");
    let client = pool.get().await?;
    client
        .batch_execute(&format!("CREATE SCHEMA {target}"))
        .await?;
    for step in muster_projections::steps(p, &target) {
        client.batch_execute(&step).await?;
    }
    let mut kafka = cfg.kafka.clone();
    kafka.auto_offset_reset = muster_runtime::config::OffsetReset::Earliest;
    let consumer: StreamConsumer = kafka
        .consumer(&format!(
            "bench.project.{}",
            muster_runtime::unique_suffix()
        ))
        .create()?;
    consumer.subscribe(&[topic])?;
    let key = format!("bench:{schema}:live");
    let applier = Applier {
        projection: p,
        codec,
        offsets_key: &key,
        schema: &target,
        announce: false,
        durable: true,
    };
    let bounds = cfg.projections.batches().bounds(Duration::from_secs(10));
    let mut done = 0;
    let mut started = None;
    while done < n {
        let batch = gather(&consumer, bounds, |_, _| true).await?;
        anyhow::ensure!(!batch.is_empty(), "no input after {done} of {n} records");
        started.get_or_insert_with(Instant::now);
        done += batch.len();
        applier.apply(pool, batch).await?;
    }
    client
        .execute(
            "DELETE FROM projection_offsets WHERE projection = $1",
            &[&key],
        )
        .await?;
    Ok(started.map(|s| s.elapsed()).unwrap_or_default())
}
