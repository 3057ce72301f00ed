//! `muster`: one binary, one subcommand per worker kind.

// warp's filter chain of every route is one deeply nested type; the release build's trait
// solver needs more than the default depth to prove it `Unpin` (see api/src/lib.rs).
#![recursion_limit = "512"]

mod bench;
mod commands;
mod config;
mod reconcile;
mod roles;
mod simulate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use muster_runtime::shutdown;

pub use crate::commands::app_state;
use crate::config::Config;
use crate::roles::Role;

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
    #[command(args_conflicts_with_subcommands = true)]
    Process {
        #[command(subcommand)]
        action: Option<ProcessAction>,
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
        /// The projection: a hand-written one, or a declared table by its name (see `muster
        /// replay --list`).
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
    /// Check that nothing was lost or doubled from a simulator's answers through the topics
    /// and read models to its webhook receivers (the fault suite runs it after each fault);
    /// exits non-zero if something was.
    Reconcile(reconcile::Args),
}

/// Working on SQL processors, offline: no Kafka, registry or database needed.
#[derive(Subcommand)]
enum ProcessAction {
    /// Run each SQL processor of a folder on its golden input and compare with the expected
    /// rows (`golden/<stream>.input.json`, `golden/<name>.expected.json`); exits non-zero on
    /// any difference.
    Test {
        /// A folder like those in `processors.sql_dirs` (default: the built-in processors).
        dir: Option<PathBuf>,
        /// Rewrite the expected files from the queries' output (review the change like code).
        #[arg(long)]
        update: bool,
        /// Only these processors (repeatable; default: every one in the folder).
        #[arg(long)]
        only: Vec<String>,
    },
    /// Write a commented skeleton `NAME.sql` and its golden files, ready to edit and test.
    New {
        /// The processor's name: lower-case letters, digits and '_'.
        name: String,
        /// The stream it reads: checkins or normalized.
        #[arg(long)]
        input: muster_processors::sql::Stream,
        /// The folder to write into (one of `processors.sql_dirs` to run it).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    if let Command::Simulate(args) = cli.command {
        return simulate::run(*args, shutdown::on_signals()).await;
    }
    if let Command::Process {
        action: Some(action),
        ..
    } = cli.command
    {
        return match action {
            ProcessAction::Test { dir, update, only } => {
                commands::process_test(dir, update, only).await
            }
            ProcessAction::New { name, input, dir } => {
                commands::process_new(&dir, &name, input).await
            }
        };
    }
    let mut cfg = Config::load(&cli.config)?;
    let roles: &[Role] = match cli.command {
        Command::Ingest => &[Role::Ingest],
        Command::Process {
            action: None,
            list: false,
            only,
        } => {
            replace_unless_empty(&mut cfg.processors.only, only);
            &[Role::Process]
        }
        Command::Project { only } => {
            replace_unless_empty(&mut cfg.projections.only, only);
            &[Role::Project]
        }
        Command::Api => &[Role::Api],
        Command::Webhooks => &[Role::Webhooks],
        Command::Insights { once: false } => &[Role::Insights],
        Command::All => &Role::ALL,
        Command::Process {
            action: None,
            list: true,
            ..
        } => return commands::list_processors(&cfg),
        Command::Insights { once: true } => return commands::insights_once(&cfg).await,
        Command::Config => {
            print!("{}", cfg.redacted_toml()?);
            return Ok(());
        }
        Command::Migrate => {
            roles::migrate(&cfg.database.pool()?, &cfg.processors).await?;
            println!("migrations applied");
            return Ok(());
        }
        Command::Replay { list: true, .. } => return commands::list_projections(&cfg),
        Command::Replay {
            projection,
            dry_run,
            accept_truncated,
            ..
        } => {
            let name = projection.unwrap_or_default();
            return commands::replay(&cfg, &name, dry_run, accept_truncated).await;
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
            return commands::sql(&cfg, &query, format, output.as_deref(), &limits).await;
        }
        Command::Bench(b) => return bench::run(b, cfg).await,
        Command::Reconcile(args) => return reconcile::run(args, cfg).await,
        Command::Simulate(_)
        | Command::Process {
            action: Some(_), ..
        } => {
            unreachable!("handled above")
        }
    };
    roles::run(roles, cfg).await
}

/// `--only` on the command line wins over the config's `only`.
fn replace_unless_empty(only: &mut Vec<String>, given: Vec<String>) {
    if !given.is_empty() {
        *only = given;
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
