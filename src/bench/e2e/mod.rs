//! `muster bench e2e`: end-to-end freshness. The simulator (a child process) serves N services,
//! each polled every `--interval` by `muster ingest`, and pushes their check-ins to the API;
//! `muster process`, `muster project` and `muster api` run as child processes too, on a
//! database, topics and consumer groups of the run's own. Once every service has its realtime
//! row and the warm-up is over, the bench measures for `--duration`, per snapshot the upstream
//! answered: the time to the realtime row in PostgreSQL and to the API's answer (see
//! [`watch`]), and how many snapshots/s got through. The baseline, in the same run on the same
//! broker: a plain rdkafka produce → consume round trip at the same rate (see [`baseline`]).

mod baseline;
mod ledger;
mod report;
mod stack;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::Shutdown;

use crate::config::Config;
use ledger::{Ledger, Snapshot};
use report::{Cpu, Report};
use stack::{Process, Stack, free_port};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Simulated services, each polled once per interval.
    #[arg(long, default_value_t = 2_000)]
    services: usize,
    /// Poll interval of every service (whole seconds, as registrations hold it).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to let the pipeline settle once every service has its first row.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Events whose API answers are watched (one request per new snapshot of each).
    #[arg(long, default_value_t = 100)]
    api_sample: usize,
    /// Also write the figures as a Markdown table to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// The simulator's event ids (`simulate --prefix`).
const PREFIX: &str = "bench-";

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    anyhow::ensure!(args.services > 0, "--services must be at least 1");
    anyhow::ensure!(
        args.interval >= Duration::from_secs(1) && args.interval.subsec_nanos() == 0,
        "--interval must be whole seconds (registrations hold seconds)"
    );
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be positive");
    let stack = Stack::create(cfg).await?;
    let logs = std::env::temp_dir().join(format!("muster-bench-e2e-{}", stack.names.run));
    std::fs::create_dir_all(&logs)?;
    eprintln!(
        "e2e: database, topics and groups of run {} (worker logs in {})",
        stack.names.run,
        logs.display()
    );
    // Ctrl-C or SIGTERM drops the measurement (its processes are killed with it) and still
    // removes the run's data.
    let interrupted = muster_runtime::shutdown::on_signals();
    let measured = tokio::select! {
        m = measure(&args, &stack, &logs) => m,
        _ = interrupted.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
    let removed = stack.remove().await;
    let report = measured?;
    removed?;
    // The logs are kept when something failed.
    let _ = std::fs::remove_dir_all(&logs);
    report.print();
    if let Some(path) = &args.report {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs the pipeline, measures, stops it, then takes the baseline.
async fn measure(args: &Args, stack: &Stack, logs: &std::path::Path) -> anyhow::Result<Report> {
    let admin = format!("bench-{}", muster_runtime::unique_suffix().repeat(2));
    let mut env = stack.env();
    let api_port = free_port();
    let api_base = format!("http://127.0.0.1:{api_port}");
    let mut api_env = env.clone();
    api_env.extend([
        ("MUSTER_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("MUSTER_ADMIN_TOKEN", admin.clone()),
        (
            "MUSTER__API__RATE_LIMITS__PARTNER_PER_SECOND",
            "1000000000".into(),
        ),
        (
            "MUSTER__API__RATE_LIMITS__PARTNER_BURST",
            "1000000000".into(),
        ),
    ]);
    let mut workers = vec![Process::muster("api", &["api"], &api_env, logs)?];
    workers[0].ready(&format!("{api_base}/readyz")).await?;
    for (name, role) in [
        ("ingest", "ingest"),
        ("process", "process"),
        ("project", "project"),
    ] {
        let ops = free_port();
        env.push(("MUSTER__OPS__ADDR", format!("127.0.0.1:{ops}")));
        let mut p = Process::muster(name, &[role], &env, logs)?;
        env.pop();
        p.ready(&format!("http://127.0.0.1:{ops}/readyz")).await?;
        workers.push(p);
    }

    // The upstream: registers every service with the API, serves their snapshots, pushes
    // their check-ins.
    let sim_port = free_port();
    let sim_base = format!("http://127.0.0.1:{sim_port}");
    let (n, secs) = (
        args.services.to_string(),
        args.interval.as_secs().to_string(),
    );
    let sim_args = [
        "simulate",
        "--events",
        &n,
        "--addr",
        &format!("127.0.0.1:{sim_port}"),
        "--prefix",
        PREFIX,
        "--interval",
        &secs,
        "--register-with",
        &api_base,
        "--admin-token",
        &admin,
        "--push-checkins",
    ];
    workers.push(Process::muster("simulate", &sim_args, &[], logs)?);

    // Watch from the first row on.
    let ledger: watch::Shared = Arc::new(Mutex::new(Ledger::default()));
    let sampled: Vec<String> = sample(args.services, args.api_sample);
    let (probes, targets): (HashMap<_, _>, Vec<_>) = sampled
        .iter()
        .map(|e| {
            let (tx, rx) = tokio::sync::watch::channel(0);
            ((e.clone(), tx), (e.clone(), rx))
        })
        .unzip();
    let stop = Shutdown::new();
    let watching = tokio::spawn(watch::rows(
        stack.cfg.database.connection()?,
        ledger.clone(),
        probes,
        stop.clone(),
    ));

    let pool = stack.cfg.database.pool()?;
    eprintln!("e2e: waiting for the first row of each of {n} services ...");
    let deadline = Instant::now() + Duration::from_secs(120 + args.services as u64 / 10);
    loop {
        let rows: i64 = pool
            .get()
            .await?
            .query_one("SELECT count(*) FROM event_realtime", &[])
            .await?
            .get(0);
        if rows as usize >= args.services {
            break;
        }
        for w in &mut workers {
            w.alive()?;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {rows} of {n} services have a realtime row; logs in {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let key = super::api::partner_key(&api_base, &admin, "partner", &sampled).await?;
    let http = reqwest::Client::new();
    let probing: Vec<_> = targets
        .into_iter()
        .map(|(event, rx)| {
            let url = format!("{api_base}/api/partner/events/{event}/attendance");
            tokio::spawn(watch::api(
                http.clone(),
                url,
                key.clone(),
                event,
                rx,
                ledger.clone(),
            ))
        })
        .collect();

    eprintln!(
        "e2e: warm-up {:?}, then measuring {:?} ...",
        args.warmup, args.duration
    );
    watch_alive(&mut workers, args.warmup).await?;
    let cpu_before = Cpu::now(&workers)?;
    let from_ms = chrono::Utc::now().timestamp_millis();
    watch_alive(&mut workers, args.duration).await?;
    let to_ms = chrono::Utc::now().timestamp_millis();
    let cpu = Cpu::now(&workers)?.since(&cpu_before);
    // The window's last answers get time to arrive; later ones are not counted.
    watch_alive(
        &mut workers,
        (3 * args.interval).max(Duration::from_secs(5)),
    )
    .await?;
    stop.cancel();
    watching.await.context("the row watcher")??;
    for p in probing {
        p.abort();
    }
    let served = served(&sim_base, args.services).await?;
    drop(workers);

    let body = crate::simulate::SimEvent::nth(PREFIX, 0, 600.0)
        .snapshot(chrono::Utc::now())
        .to_string();
    let rate = args.services as f64 / args.interval.as_secs_f64();
    eprintln!(
        "baseline: Kafka produce → consume, {rate:.0} records/s of {} bytes for {:?} ...",
        body.len(),
        args.duration
    );
    let kafka = baseline::round_trip(
        &stack.cfg,
        rate,
        body.len(),
        args.services,
        Duration::from_secs(3),
        args.duration,
    )
    .await?;

    let sampled: HashSet<String> = sampled.into_iter().collect();
    let window = ledger
        .lock()
        .expect("poisoned")
        .window(from_ms, to_ms, &served, &sampled);
    Ok(Report {
        services: args.services,
        interval: args.interval,
        warmup: args.warmup,
        duration: Duration::from_millis((to_ms - from_ms) as u64),
        sampled: sampled.len(),
        window,
        kafka,
        cpu,
    })
}

/// Sleeps `time`, failing as soon as a worker stops.
async fn watch_alive(workers: &mut [Process], time: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + time;
    while Instant::now() < until {
        for w in workers.iter_mut() {
            w.alive()?;
        }
        tokio::time::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        )
        .await;
    }
    Ok(())
}

/// `k` event ids spread evenly over the `n` services.
fn sample(n: usize, k: usize) -> Vec<String> {
    let k = k.min(n);
    (0..k)
        .map(|i| format!("{PREFIX}{}", i * n / k + 1))
        .collect()
}

/// Every snapshot the simulator answered, from each service's stats.
async fn served(base: &str, services: usize) -> anyhow::Result<Vec<Snapshot>> {
    let http = reqwest::Client::new();
    let mut served = Vec::new();
    for i in 1..=services {
        let event = format!("{PREFIX}{i}");
        let stats: serde_json::Value = http
            .get(format!("{base}/events/{event}/stats"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("the simulator's stats")?;
        served.extend(
            stats["answered"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_i64)
                .map(|at| (event.clone(), at)),
        );
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_spreads_over_the_services() {
        assert_eq!(sample(10, 3), ["bench-1", "bench-4", "bench-7"]);
        assert_eq!(sample(2, 5), ["bench-1", "bench-2"]);
        assert!(sample(2000, 100).iter().all(|e| {
            let i: usize = e[PREFIX.len()..].parse().unwrap();
            (1..=2000).contains(&i)
        }));
    }
}
