//! `muster`: one binary, one subcommand per worker kind.

// warp's filter chain of every route is one deeply nested type; the release build's trait
// solver needs more than the default depth to prove it `Unpin` (see api/src/lib.rs).
#![recursion_limit = "512"]

mod bench;
mod config;
mod simulate;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use muster_runtime::{Health, Shutdown, ops, shutdown};
use muster_schemas::Codec;

use crate::config::Config;

/// Decoding, normalizing and encoding allocate many small strings per record; mimalloc makes
/// those allocations markedly cheaper than glibc's malloc (see README, Performance).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Event-sourced data-integration and API hub for event attendance systems"
)]
struct Cli {
    /// Config files (TOML), later ones override earlier ones; env vars override both.
    #[arg(
        short,
        long,
        global = true,
        env = "MUSTER_CONFIG",
        value_delimiter = ','
    )]
    config: Vec<PathBuf>,
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll registered event-management services into the raw topics.
    Ingest,
    /// Normalize and window raw topics into derived topics (exactly-once).
    Process {
        /// List the registered processors and exit.
        #[arg(long)]
        list: bool,
        /// Run only these processors (repeatable; default: all).
        #[arg(long)]
        only: Vec<String>,
    },
    /// Materialize derived topics into PostgreSQL read models.
    Project {
        /// Run only these projections (repeatable; default: all; see `muster replay --list`).
        #[arg(long)]
        only: Vec<String>,
    },
    /// Serve the HTTP API.
    Api,
    /// Turn alerts, attendance, status and health changes into partner webhook deliveries,
    /// and deliver them (signed, retried); run as many as you like.
    Webhooks,
    /// Recompute the cross-event insights (patterns, behaviour, forecasts, ROI,
    /// recommendations) on a schedule into the `insight_*` tables.
    Insights {
        /// Compute once, print a summary and exit.
        #[arg(long)]
        once: bool,
    },
    /// Every worker in one process, for a laptop.
    All,
    /// Apply database migrations and exit.
    Migrate,
    /// Rebuild a projection from the start of its topics into fresh tables, compare them with
    /// the live ones, and swap them in while the live projection keeps serving.
    Replay {
        /// The projection (see `muster replay --list`).
        #[arg(required_unless_present = "list")]
        projection: Option<String>,
        /// List the projections and exit.
        #[arg(long)]
        list: bool,
        /// Rebuild and compare, but keep the live tables.
        #[arg(long)]
        dry_run: bool,
        /// Swap even if a topic lost its oldest records to retention (history only the live
        /// tables hold is then dropped).
        #[arg(long)]
        accept_truncated: bool,
    },
    /// Run one read-only SQL query (DataFusion) over the projections and the Parquet archive.
    Sql {
        /// The query; `muster sql "SHOW TABLES"` lists what there is.
        query: String,
        /// table, csv, json (one object per line) or parquet (needs --output).
        #[arg(long, default_value = "table")]
        format: muster_analytics::Format,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        /// Stop the query after this long.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Return at most this many rows (the rest is reported, not printed).
        #[arg(long, default_value_t = 100_000)]
        max_rows: usize,
        /// Refuse an answer larger than this many bytes (as Arrow arrays in memory).
        #[arg(long, default_value_t = 256 << 20)]
        max_bytes: usize,
        /// Memory the query may use, in bytes: past it sorts, aggregations and joins spill to
        /// disk where they can, and anything else stops the query with an error.
        #[arg(long, default_value_t = 1 << 30)]
        memory_limit: usize,
    },
    /// Serve simulated event-management services on loopback.
    Simulate(Box<simulate::Args>),
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Measure throughput against a baseline taken in the same run.
    #[command(subcommand)]
    Bench(bench::Bench),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    if let Command::Simulate(args) = cli.command {
        return simulate::run(*args, shutdown::on_signals()).await;
    }
    let cfg = Config::load(&cli.config)?;
    match cli.command {
        Command::Config => {
            print!("{}", cfg.redacted_toml()?);
            Ok(())
        }
        Command::Migrate => {
            migrate(&cfg.database.pool()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Replay { list: true, .. } => {
            for p in muster_projections::registry() {
                println!(
                    "{:<16} {} ← {}",
                    p.name(),
                    p.tables().join(", "),
                    p.topics().join(", ")
                );
            }
            Ok(())
        }
        Command::Replay {
            projection,
            dry_run,
            accept_truncated,
            ..
        } => {
            replay(
                &cfg,
                projection.as_deref().unwrap_or_default(),
                dry_run,
                accept_truncated,
            )
            .await
        }
        Command::Sql {
            query,
            format,
            output,
            timeout,
            max_rows,
            max_bytes,
            memory_limit,
        } => {
            let limits = muster_analytics::Limits {
                timeout,
                max_rows,
                max_bytes,
                memory: memory_limit,
            };
            sql(&cfg, &query, format, output.as_deref(), &limits).await
        }
        Command::Insights { once: true } => insights_once(&cfg).await,
        Command::Simulate(_) => unreachable!("handled above"),
        Command::Bench(b) => bench::run(b, cfg).await,
        Command::Process { list: true, .. } => {
            for p in muster_processors::registry(&cfg.processors)? {
                println!("{:<28} {}", p.name(), p.description());
            }
            Ok(())
        }
        Command::Process { only, .. } if !only.is_empty() => {
            let mut cfg = cfg;
            cfg.processors.only = only;
            run_workers(
                Command::Process {
                    list: false,
                    only: vec![],
                },
                cfg,
            )
            .await
        }
        Command::Project { only } if !only.is_empty() => {
            let mut cfg = cfg;
            cfg.projections.only = only;
            run_workers(Command::Project { only: vec![] }, cfg).await
        }
        command => run_workers(command, cfg).await,
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MUSTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn migrate(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let mut client = pool
        .get()
        .await
        .context("connecting to PostgreSQL (is it running? see scripts/services.sh)")?;
    muster_runtime::migrate::apply(
        &mut client,
        &[
            &muster_ingest::MIGRATIONS,
            &muster_api::MIGRATIONS,
            &muster_webhooks::MIGRATIONS,
            &muster_analytics::insights::store::MIGRATIONS,
        ],
    )
    .await?;
    muster_projections::migrate(&mut client).await
}

async fn replay(
    cfg: &Config,
    name: &str,
    dry_run: bool,
    accept_truncated: bool,
) -> anyhow::Result<()> {
    let projection = muster_projections::find(name)?;
    let pool = cfg.database.pool()?;
    migrate(&pool).await?;
    let codec = Codec::new(&cfg.schema_registry.url)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replaying {prefix} [{bar:30}] {human_pos}/{human_len} records, {per_sec}, ETA {eta}",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    let report = muster_projections::replay::Replay {
        projection: projection.as_ref(),
        kafka: &cfg.kafka,
        codec: &codec,
        pool: &pool,
        cfg: &cfg.projections,
        mode: if dry_run {
            muster_projections::replay::Mode::DryRun
        } else {
            muster_projections::replay::Mode::Swap
        },
        topics: None,
        accept_truncated,
    }
    .run(|p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "replayed {} records of {name} in {:.1} s ({:.0} records/s)",
        report.records,
        report.elapsed.as_secs_f64(),
        report.records as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    for (table, n) in &report.differences {
        if *n == 0 {
            println!("  {table}: identical to the live table");
        } else {
            println!("  {table}: {n} rows differ from the live table");
        }
    }
    if report.swapped {
        println!("swapped in: the live projection now serves the rebuilt tables");
    } else {
        println!("dry run: the live tables are unchanged");
    }
    Ok(())
}

/// Runs the workers of `command` until SIGTERM, or until one fails.
async fn run_workers(command: Command, cfg: Config) -> anyhow::Result<()> {
    let metrics = ops::install_metrics()?;
    let health = Health::default();
    let stop = shutdown::on_signals();
    let pool = cfg.database.pool()?;
    migrate(&pool).await?;
    let codec = Codec::new(&cfg.schema_registry.url)?;
    let secrets = cfg.security.secrets()?;
    // `/readyz` names PostgreSQL or Kafka when either is down, in every worker kind.
    muster_runtime::probe::spawn(
        health.clone(),
        pool.clone(),
        &cfg.kafka,
        std::time::Duration::from_secs(2),
        stop.clone(),
    )?;

    let (ingest, process, project, api, webhooks, insights) = match command {
        Command::Ingest => (true, false, false, false, false, false),
        Command::Process { .. } => (false, true, false, false, false, false),
        Command::Project { .. } => (false, false, true, false, false, false),
        Command::Api => (false, false, false, true, false, false),
        Command::Webhooks => (false, false, false, false, true, false),
        Command::Insights { .. } => (false, false, false, false, false, true),
        _ => (true, true, true, true, true, true),
    };
    let mut tasks = tokio::task::JoinSet::new();
    if api {
        let state = app_state(&cfg, &pool, codec.clone(), health.clone(), metrics.clone()).await?;
        let (mut api_cfg, stop) = (cfg.api.clone(), stop.clone());
        api_cfg.flight.archive_url = cfg.projections.archive.url.clone();
        tasks.spawn(async move { muster_api::run(api_cfg, state, stop).await.context("api") });
    } else {
        let default_port = if ingest {
            9181
        } else if process {
            9182
        } else if project {
            9183
        } else if webhooks {
            9184
        } else {
            9185
        };
        let addr = cfg
            .ops
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)));
        let (health, metrics, stop) = (health.clone(), metrics.clone(), stop.clone());
        tasks.spawn(async move {
            ops::serve(addr, health, metrics, stop)
                .await
                .context("ops endpoint")
        });
    }
    if ingest {
        let (c, k, codec, pool, secrets, health, stop) = (
            cfg.ingest.clone(),
            cfg.kafka.clone(),
            codec.clone(),
            pool.clone(),
            secrets.clone(),
            health.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            muster_ingest::run(c, &k, codec, pool, secrets, health, stop)
                .await
                .context("ingest")
        });
    }
    if process {
        let (c, k, codec, health, stop) = (
            cfg.processors.clone(),
            cfg.kafka.clone(),
            codec.clone(),
            health.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            muster_processors::run(c, &k, codec, health, stop)
                .await
                .context("process")
        });
    }
    if project {
        let (c, k, codec, pool, health, stop) = (
            cfg.projections.clone(),
            cfg.kafka.clone(),
            codec.clone(),
            pool.clone(),
            health.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            muster_projections::run(c, &k, codec, pool, health, stop)
                .await
                .context("project")
        });
    }
    if project && cfg.projections.archive.url.is_some() {
        let (c, k, codec, pool, health, stop) = (
            cfg.projections.archive.clone(),
            cfg.kafka.clone(),
            codec.clone(),
            pool.clone(),
            health.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            muster_projections::archive::run(c, &k, codec, pool, health, stop)
                .await
                .context("archive")
        });
    }
    if insights {
        let (c, url, pool, health, stop) = (
            cfg.insights.clone(),
            cfg.projections.archive.url.clone(),
            pool.clone(),
            health.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            muster_analytics::insights::job::run(c, pool, url, health, stop)
                .await
                .context("insights")
        });
    }
    if webhooks {
        let outbox: std::sync::Arc<dyn muster_projections::Projection> =
            std::sync::Arc::new(muster_webhooks::outbox::Outbox {
                attendance_every: chrono::Duration::from_std(cfg.webhooks.attendance_every)?,
            });
        let dispatcher = muster_webhooks::dispatch::Dispatcher::new(
            cfg.webhooks.clone(),
            pool.clone(),
            secrets,
        )?;
        let (h, st) = (health.clone(), stop.clone());
        tasks.spawn(async move { dispatcher.run(h, st).await.context("webhook dispatcher") });
        let (c, k, st) = (cfg.projections.clone(), cfg.kafka.clone(), stop.clone());
        tasks.spawn(async move {
            muster_projections::run_projections(vec![outbox], c, &k, codec, pool, health, st)
                .await
                .context("webhook outbox")
        });
    }
    stop_all_on_first_exit(tasks, stop).await
}

/// `muster insights --once`: one run, and what it found.
async fn insights_once(cfg: &Config) -> anyhow::Result<()> {
    let pool = cfg.database.pool()?;
    migrate(&pool).await?;
    let Some(r) = muster_analytics::insights::job::run_once(
        &cfg.insights,
        &pool,
        cfg.projections.archive.url.as_deref(),
    )
    .await?
    else {
        println!("another process is computing insights right now; nothing done");
        return Ok(());
    };
    println!(
        "{} events, {} pattern cells, {} behaviour bins (k = {}), {} forecasts, {} ROI rows, {} recommendations",
        r.outcomes.len(),
        r.patterns.len(),
        r.behaviour.len(),
        cfg.insights.k_anonymity,
        r.forecasts.len(),
        r.roi.len(),
        r.recommendations.len()
    );
    match r.backtest.mape {
        Some(m) => println!(
            "forecast backtest: MAPE {m:.1} % of final attendance over {} past events, {:.0} % inside the {:.0} % interval",
            r.backtest.events,
            r.backtest.interval_coverage.unwrap_or(0.0) * 100.0,
            cfg.insights.forecast.interval * 100.0
        ),
        None => println!("forecast backtest: no past event had enough similar events before it"),
    }
    Ok(())
}

/// `muster sql`: one query, its rows to standard output or a file, a count to stderr.
async fn sql(
    cfg: &Config,
    query: &str,
    format: muster_analytics::Format,
    output: Option<&std::path::Path>,
    limits: &muster_analytics::Limits,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if format == muster_analytics::Format::Parquet
        && output.is_none()
        && std::io::stdout().is_terminal()
    {
        anyhow::bail!("Parquet is binary: give --output FILE (or redirect standard output)");
    }
    let pool = cfg.database.pool()?;
    let ctx = muster_analytics::context(&pool, cfg.projections.archive.url.as_deref()).await?;
    let answer = muster_analytics::query(&ctx, query, limits).await?;
    match output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            muster_analytics::write(&answer, format, &mut file)?;
        }
        None => muster_analytics::write(&answer, format, &mut std::io::stdout())?,
    }
    eprintln!(
        "{} row{}{}",
        answer.rows,
        if answer.rows == 1 { "" } else { "s" },
        if answer.truncated {
            format!(
                " (more were left out: raise --max-rows above {})",
                limits.max_rows
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// What the API's routes need.
async fn app_state(
    cfg: &Config,
    pool: &deadpool_postgres::Pool,
    codec: Codec,
    health: Health,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<muster_api::AppState> {
    let secrets = cfg.security.secrets()?;
    let collector = muster_ingest::collector(&cfg.kafka, codec, &cfg.ingest).await?;
    Ok(muster_api::AppState {
        pool: pool.clone(),
        registrar: muster_ingest::Registrar {
            collector: collector.clone(),
            pool: pool.clone(),
            secrets: secrets.clone(),
        },
        receiver: muster_ingest::checkins::Receiver {
            collector,
            pool: pool.clone(),
            secrets: secrets.clone(),
            tolerance: cfg.security.signature_tolerance,
        },
        health,
        metrics,
        webhooks: webhook_store(cfg, pool, &secrets)?,
        insights: cfg.insights.clone(),
    })
}

/// What the API's webhook routes need.
fn webhook_store(
    cfg: &Config,
    pool: &deadpool_postgres::Pool,
    secrets: &muster_runtime::secrets::Secrets,
) -> anyhow::Result<muster_webhooks::store::Store> {
    Ok(muster_webhooks::store::Store {
        pool: pool.clone(),
        secrets: secrets.clone(),
        policy: muster_webhooks::target::Policy::new(
            cfg.webhooks.networks().map_err(anyhow::Error::msg)?,
        ),
        default_schedule: cfg.webhooks.retry_schedule_secs.clone(),
        max_endpoints: cfg.webhooks.max_endpoints_per_partner as i64,
        max_replay: cfg.webhooks.max_replay as i64,
    })
}

/// A worker that returns before shutdown has failed: stop the others and report it.
async fn stop_all_on_first_exit(
    mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    stop: Shutdown,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done.context("a worker panicked").and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "worker failed; stopping");
            first_error.get_or_insert(e);
        } else if !stop.is_cancelled() {
            tracing::error!("a worker stopped unexpectedly; stopping");
            first_error.get_or_insert(anyhow::anyhow!("a worker stopped unexpectedly"));
        }
        stop.cancel();
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}
