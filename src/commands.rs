//! The one-shot subcommands: list, test and create SQL processors, replay, insights once, SQL;
//! and the API's state, which the API role and the API benchmark build.

use anyhow::Context;
use muster_runtime::Env;

use crate::config::Config;

/// `muster process --list`.
pub fn list_processors(cfg: &Config) -> anyhow::Result<()> {
    for p in muster_processors::registry(&cfg.processors)? {
        println!("{:<28} {}", p.name(), p.description());
    }
    Ok(())
}

/// `muster process test [DIR]`: the report on standard output; exit status 1 on any failure.
pub async fn process_test(
    dir: Option<std::path::PathBuf>,
    update: bool,
    only: Vec<String>,
) -> anyhow::Result<()> {
    use muster_processors::sql::golden;
    let folder = dir.map_or(golden::Folder::BuiltIn, golden::Folder::Dir);
    let report = golden::run(&folder, &golden::Options { update, only }).await?;
    println!("{report}");
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

/// `muster process new NAME --input STREAM [--dir DIR]`.
pub async fn process_new(
    dir: &std::path::Path,
    name: &str,
    input: muster_processors::sql::Stream,
) -> anyhow::Result<()> {
    let created = muster_processors::sql::golden::create(dir, name, input).await?;
    println!("wrote {}", created.sql.display());
    if let Some(path) = &created.input {
        println!(
            "wrote {} (the built-in sample of the {} stream)",
            path.display(),
            input.table()
        );
    }
    println!(
        "wrote {} ({} rows from the sample)",
        created.expected.display(),
        created.rows
    );
    println!(
        "next: edit the query, then `muster process test {dir}`; `--update` accepts its new \
         output. Add {dir} to processors.sql_dirs to run it.",
        dir = dir.display()
    );
    Ok(())
}

/// `muster replay --list`: the hand-written projections and the declared tables.
pub fn list_projections(cfg: &Config) -> anyhow::Result<()> {
    for p in muster_projections::all(&cfg.processors)? {
        println!(
            "{:<16} {} ← {}",
            p.name(),
            p.tables().join(", "),
            p.topics().join(", ")
        );
    }
    Ok(())
}

/// `muster replay`: rebuild, compare, swap, with a progress bar.
pub async fn replay(
    cfg: &Config,
    name: &str,
    dry_run: bool,
    accept_truncated: bool,
) -> anyhow::Result<()> {
    let projection = muster_projections::find_in(muster_projections::all(&cfg.processors)?, name)?;
    let pool = cfg.database.pool()?;
    crate::roles::migrate(&pool, &cfg.processors).await?;
    let codec = cfg.codec()?;
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

/// `muster insights --once`: one run, and what it found.
pub async fn insights_once(cfg: &Config) -> anyhow::Result<()> {
    let pool = cfg.database.pool()?;
    crate::roles::migrate(&pool, &cfg.processors).await?;
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
pub async fn sql(
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

/// What the API's routes need; starts the change feed's listener.
pub async fn app_state(cfg: &Config, env: &Env) -> anyhow::Result<muster_api::AppState> {
    let collector = muster_ingest::collector(&env.kafka, env.codec.clone(), &cfg.ingest).await?;
    let secrets = env.secrets.clone();
    Ok(muster_api::AppState {
        pool: env.pool.clone(),
        registrar: muster_ingest::Registrar {
            collector: collector.clone(),
            pool: env.pool.clone(),
            secrets: secrets.clone(),
        },
        receiver: muster_ingest::checkins::Receiver {
            collector,
            pool: env.pool.clone(),
            secrets: secrets.clone(),
            tolerance: cfg.security.signature_tolerance,
        },
        health: env.health.clone(),
        metrics: env.metrics.clone(),
        webhooks: muster_webhooks::subscriptions::Store::new(
            &cfg.webhooks,
            env.pool.clone(),
            secrets,
        )
        .map_err(anyhow::Error::msg)?,
        insights: cfg.insights.clone(),
        feed: muster_api::feed::Feed::start(
            cfg.api.feed.clone(),
            cfg.database.connection()?,
            env.pool.clone(),
            chrono::Duration::seconds(cfg.api.stale_after_secs as i64),
            env.health.clone(),
            env.shutdown.clone(),
        ),
    })
}
