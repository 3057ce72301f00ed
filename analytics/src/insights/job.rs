//! `muster insights`: recomputes the insights every `every` into the `insight_*` tables. Any
//! number may run; a PostgreSQL advisory lock lets one compute at a time, the others skip.

use std::time::Instant;

use anyhow::Context;
use muster_runtime::{Env, Workers};

use super::{InsightsConfig, Report, compute, tables};

/// Taken for a run; any constant only this job uses.
const LOCK: i64 = 7_010_774;

/// One run now: compute over the projections (and the archive at `archive_url`) and replace
/// the tables. `None` when another process holds the run.
pub async fn run_once(
    cfg: &InsightsConfig,
    pool: &deadpool_postgres::Pool,
    archive_url: Option<&str>,
) -> anyhow::Result<Option<Report>> {
    let started = Instant::now();
    let mut client = pool.get().await.context("connecting to PostgreSQL")?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK])
        .await?
        .get(0);
    if !locked {
        tracing::info!("another process is computing insights; skipping this run");
        return Ok(None);
    }
    let result = async {
        let ctx = crate::projections(pool, None).await?;
        if let Some(url) = archive_url
            && let Err(e) = crate::register_archive(&ctx, url).await
        {
            // Behaviour needs the archive; everything else goes on without it.
            tracing::warn!(error = %format!("{e:#}"), "insights without the archive: no behaviour");
        }
        let known = tables::known_outcomes(&**client).await?;
        let report = compute(&ctx, cfg, chrono::Utc::now(), &known).await?;
        let took = started.elapsed();
        tables::write(&mut client, &report, took.as_millis() as i64).await?;
        Ok::<_, anyhow::Error>(report)
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    let report = result?;
    let took = started.elapsed();
    metrics::histogram!("muster_insights_run_seconds").record(took.as_secs_f64());
    metrics::gauge!("muster_insights_forecasts").set(report.forecasts.len() as f64);
    if let Some(m) = report.backtest.mape {
        metrics::gauge!("muster_insights_backtest_mape_percent").set(m);
    }
    tracing::info!(
        events = report.outcomes.len(),
        patterns = report.patterns.len(),
        behaviour_bins = report.behaviour.len(),
        forecasts = report.forecasts.len(),
        recommendations = report.recommendations.len(),
        backtest_events = report.backtest.events,
        backtest_mape = ?report.backtest.mape,
        took_ms = took.as_millis() as u64,
        "insights recomputed"
    );
    Ok(Some(report))
}

/// `muster insights`: runs every `cfg.every` until shutdown, over the archive at `archive_url`
/// too when there is one; a failed run is reported and retried at the next tick.
pub fn spawn(env: &Env, cfg: InsightsConfig, archive_url: Option<String>) -> Workers {
    let env = env.clone();
    Workers::one("insights", async move {
        run(&env, &cfg, archive_url.as_deref()).await;
        Ok(())
    })
}

async fn run(env: &Env, cfg: &InsightsConfig, archive_url: Option<&str>) {
    let Env {
        pool,
        health,
        shutdown,
        ..
    } = env;
    loop {
        match run_once(cfg, pool, archive_url).await {
            Ok(_) => health.ready("insights"),
            Err(e) => {
                metrics::counter!("muster_insights_failures_total").increment(1);
                tracing::warn!(error = %format!("{e:#}"), "insights run failed; the next one retries");
                health.failing("insights", format!("{e:#}"));
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(cfg.every) => {}
        }
    }
}
