//! `muster reconcile`: after a fault, checks that nothing was lost or doubled between the
//! simulated upstreams, the topics, the read models and the partners' webhook receivers.
//!
//! - every snapshot the simulator answered with a 200 is on the raw topic exactly once;
//! - every raw snapshot has exactly one normalized record or one dead letter;
//! - every projection equals a rebuild from its topics (a dry-run `muster replay`);
//! - every alert on the alerts topic was queued once for each endpoint subscribed to it, and
//!   delivered: each queued message reached its receiver with a 2xx, first arrivals in sequence
//!   order per event, a repeat under the same `webhook-id`.
//!
//! Losses can be the pipeline still catching up, so the checks run again until they pass or
//! the timeout ends; a duplicate never goes away, so it fails at once.

mod topics;
mod webhooks;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_schemas::{DeadLetter, NormalizedMetrics, RawSnapshot};
use serde::Serialize;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `muster simulate` whose services and webhook receivers are checked.
    #[arg(long, default_value = "http://127.0.0.1:9100")]
    pub simulator: String,
    /// Times (epoch ms) ingest was killed: a snapshot answered in the 2 s before one may have
    /// died with the process before it was published (the next poll supersedes it).
    #[arg(long, value_delimiter = ',')]
    pub ingest_killed_at: Vec<i64>,
    /// Give up on losses after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Skip the projections' rebuilds (the slowest check).
    #[arg(long)]
    pub no_projections: bool,
}

/// What one pass found; every count but the totals should be 0.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Snapshots the simulator answered with a 200 (before the check began).
    pub answered: usize,
    pub answered_lost: usize,
    /// Lost, but answered in the 2 s before ingest was killed (allowed, counted apart).
    pub lost_with_ingest: usize,
    pub answered_duplicated: usize,
    pub raw: usize,
    pub raw_unprocessed: usize,
    pub raw_processed_twice: usize,
    pub dead_letters: usize,
    /// Per projection, rows that differ from its rebuild.
    pub projection_differences: Vec<(String, i64)>,
    pub webhooks: webhooks::Report,
    /// The first problems found, one line each, to start looking from.
    pub details: Vec<String>,
}

/// Problems named in [`Report::details`]; the rest are counted.
const DETAILS: usize = 20;

/// Notes `what` in `details` while there is room.
pub fn detail(details: &mut Vec<String>, what: impl FnOnce() -> String) {
    if details.len() < DETAILS {
        details.push(what());
    }
}

impl Report {
    /// Whether what is wrong can only get worse: a duplicate stays one.
    fn doubled(&self) -> bool {
        self.answered_duplicated + self.raw_processed_twice + self.webhooks.doubled() > 0
    }

    pub fn passed(&self) -> bool {
        !self.doubled()
            && self.answered_lost + self.raw_unprocessed == 0
            && self.projection_differences.iter().all(|(_, n)| *n == 0)
            && self.webhooks.passed()
    }
}

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    // What happened after this may still be on its way (answers, alerts, deliveries).
    let cut = chrono::Utc::now().timestamp_millis() - 2_000;
    let deadline = started + args.timeout;
    let report = loop {
        // A service that just came back may still refuse (the registry after a PostgreSQL
        // restart answers 500 for a moment): that is "not yet" too.
        let report = match check(&args, &cfg, cut).await {
            Ok(report) => report,
            Err(e) if Instant::now() < deadline => {
                eprintln!("reconcile: {e:#}; again in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if report.passed() || report.doubled() || Instant::now() >= deadline {
            break report;
        }
        eprintln!(
            "reconcile: not there yet ({}), again in 2 s",
            summary(&report)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // the last line on standard output (logs may come before it)
    println!("{}", serde_json::to_string(&report)?);
    for d in &report.details {
        eprintln!("reconcile: {d}");
    }
    eprintln!(
        "reconcile: {} in {:.1} s: {}",
        if report.passed() { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        summary(&report)
    );
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

fn summary(r: &Report) -> String {
    let differing: i64 = r.projection_differences.iter().map(|(_, n)| n).sum();
    format!(
        "{} answered: {} lost (+{} with ingest), {} doubled; {} raw: {} unprocessed, {} twice, \
         {} dead letters; {differing} projection rows differ; webhooks: {}",
        r.answered,
        r.answered_lost,
        r.lost_with_ingest,
        r.answered_duplicated,
        r.raw,
        r.raw_unprocessed,
        r.raw_processed_twice,
        r.dead_letters,
        r.webhooks
    )
}

async fn check(args: &Args, cfg: &Config, cut: i64) -> anyhow::Result<Report> {
    let codec = cfg.codec()?;
    let topics = codec.topics().clone();
    let mut report = Report::default();
    let events = simulated_events(&args.simulator).await?;

    // The simulator's answers against the raw topic, by (event, the body's timestamp).
    let raw = topics::read_all::<RawSnapshot>(&cfg.kafka, &codec).await?;
    let mut published: HashMap<(&str, i64), usize> = HashMap::new();
    for r in &raw {
        if let Some(at) = body_timestamp(&r.record.body) {
            *published.entry((&r.record.event_id, at)).or_default() += 1;
        }
    }
    let http = reqwest::Client::new();
    for event in &events {
        let stats: serde_json::Value = http
            .get(format!("{}/events/{event}/stats", args.simulator))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for at in stats["answered"]
            .as_array()
            .context("the simulator's stats have no `answered`")?
            .iter()
            .filter_map(|a| a.as_i64())
            .filter(|a| *a < cut)
        {
            report.answered += 1;
            match published.get(&(event.as_str(), at)).copied().unwrap_or(0) {
                1 => {}
                0 if args
                    .ingest_killed_at
                    .iter()
                    .any(|k| (k - 2_000..=*k).contains(&at)) =>
                {
                    report.lost_with_ingest += 1
                }
                0 => {
                    report.answered_lost += 1;
                    detail(&mut report.details, || {
                        format!("lost: {event} answered at {at}")
                    });
                }
                n => {
                    report.answered_duplicated += 1;
                    detail(&mut report.details, || {
                        format!("doubled: {event} answered at {at} is on the raw topic {n} times")
                    });
                }
            }
        }
    }

    // Each raw snapshot: one normalized record or one dead letter.
    let raw_topic = topics.of::<RawSnapshot>();
    let mut outcomes: HashMap<(i32, i64), usize> = HashMap::new();
    for n in topics::read_all::<NormalizedMetrics>(&cfg.kafka, &codec).await? {
        if n.record.source.topic == raw_topic {
            *outcomes
                .entry((n.record.source.partition, n.record.source.offset))
                .or_default() += 1;
        }
    }
    for d in topics::read_all::<DeadLetter>(&cfg.kafka, &codec).await? {
        if d.record.source_topic == raw_topic {
            report.dead_letters += 1;
            *outcomes
                .entry((d.record.source_partition, d.record.source_offset))
                .or_default() += 1;
        }
    }
    report.raw = raw.len();
    for r in &raw {
        match outcomes.get(&(r.partition, r.offset)).copied().unwrap_or(0) {
            1 => {}
            0 => report.raw_unprocessed += 1,
            n => {
                report.raw_processed_twice += 1;
                detail(&mut report.details, || {
                    format!("raw {}@{} has {n} outcomes", r.partition, r.offset)
                });
            }
        }
    }

    let pool = cfg.database.pool()?;
    report.webhooks = webhooks::check(
        &cfg.kafka,
        &codec,
        &pool,
        &http,
        &args.simulator,
        cut,
        &mut report.details,
    )
    .await?;
    // The rebuilds are the slowest check: only once the rest holds.
    if !args.no_projections && report.passed() {
        report.projection_differences = projections(cfg, &codec, &pool).await?;
        for (table, n) in report.projection_differences.iter().filter(|(_, n)| *n > 0) {
            detail(&mut report.details, || {
                format!("{table}: {n} rows differ from a rebuild")
            });
        }
    }
    Ok(report)
}

/// The event ids the simulator serves (its registrations).
async fn simulated_events(simulator: &str) -> anyhow::Result<Vec<String>> {
    let services: Vec<serde_json::Value> = reqwest::get(format!("{simulator}/services"))
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("asking the simulator at {simulator} for its services"))?
        .json()
        .await?;
    Ok(services
        .iter()
        .filter_map(|s| s["eventId"].as_str().map(str::to_owned))
        .collect())
}

/// A raw snapshot's body's `timestamp`, epoch ms (see [`crate::simulate::snapshot_time`]).
fn body_timestamp(body: &str) -> Option<i64> {
    crate::simulate::snapshot_time(&serde_json::from_str(body).ok()?)
}

/// Every projection rebuilt from its topics beside the live one, and compared.
async fn projections(
    cfg: &Config,
    codec: &muster_schemas::Codec,
    pool: &deadpool_postgres::Pool,
) -> anyhow::Result<Vec<(String, i64)>> {
    let mut differences = Vec::new();
    for p in muster_projections::all(&cfg.processors)? {
        let report = muster_projections::replay::Replay {
            projection: p.as_ref(),
            kafka: &cfg.kafka,
            codec,
            pool,
            cfg: &cfg.projections,
            mode: muster_projections::replay::Mode::DryRun,
            topics: None,
            accept_truncated: false,
        }
        .run(|_| {})
        .await
        .with_context(|| format!("rebuilding {}", p.name()))?;
        differences.extend(report.differences);
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_known_by_its_timestamp() {
        let body = r#"{"timestamp": "2026-12-07T18:00:00.123+01:00"}"#;
        assert_eq!(body_timestamp(body), Some(1_796_662_800_123));
        assert_eq!(body_timestamp("<html>"), None);
    }

    #[test]
    fn a_duplicate_fails_at_once_and_a_loss_may_catch_up() {
        let mut r = Report {
            answered_lost: 1,
            ..Report::default()
        };
        assert!(!r.passed() && !r.doubled());
        r.answered_lost = 0;
        assert!(r.passed());
        r.raw_processed_twice = 1;
        assert!(!r.passed() && r.doubled());
    }
}
