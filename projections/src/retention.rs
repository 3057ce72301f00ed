//! Deletes time-series buckets past their retention, on a timer in `muster project`. Buckets
//! are judged by their own time, not by when they were written, so a replay that re-inserts
//! old buckets has them removed again at the next pass. The change log is pruned by age in
//! the same pass, the dead-letter log (`dead_letter_log`) by its records' time, and the
//! tables SQL processors declare by their time column (`window_start` unless `-- time:` says).

use std::time::Duration;

use anyhow::Context;
use muster_runtime::Shutdown;
use muster_runtime::projection::changes;

use crate::config::RetentionConfig;

/// The tables and the retention each follows.
const TABLES: [(&str, Span); 4] = [
    ("event_series_minute", Span::Minutes),
    ("gate_series_minute", Span::Minutes),
    ("event_series_hour", Span::Hours),
    ("gate_series_hour", Span::Hours),
];

#[derive(Clone, Copy)]
enum Span {
    Minutes,
    Hours,
}

/// One pass: deletes what is older than the retention, relative to `now`; `declared` are the
/// declared tables with their time columns. Returns rows deleted per table.
pub async fn apply(
    client: &tokio_postgres::Client,
    cfg: &RetentionConfig,
    declared: &[(&'static str, String)],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let mut out = Vec::new();
    for (table, span) in TABLES {
        let keep = match span {
            Span::Minutes => cfg.minutes,
            Span::Hours => cfg.hours,
        };
        out.push((table, prune(client, table, "bucket", keep, now).await?));
    }
    for (table, column) in declared {
        out.push((table, prune(client, table, column, cfg.tables, now).await?));
    }
    let table = crate::dead_letter_log::TABLE;
    out.push((
        table,
        prune(client, table, "failed_at", cfg.dead_letters, now).await?,
    ));
    Ok(out)
}

/// Deletes the rows of `table` whose `column` (their own time) is older than `keep`.
async fn prune(
    client: &tokio_postgres::Client,
    table: &'static str,
    column: &str,
    keep: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<u64> {
    let cutoff = now - chrono::Duration::from_std(keep).context("retention out of range")?;
    let n = client
        .execute(
            &format!(
                "DELETE FROM public.{} WHERE {} < $1",
                crate::declared::ddl::quote(table),
                crate::declared::ddl::quote(column)
            ),
            &[&cutoff],
        )
        .await
        .with_context(|| format!("retention on {table}"))?;
    if n > 0 {
        tracing::info!(table, deleted = n, %cutoff, "retention");
        metrics::counter!("muster_retention_deleted_total", "table" => table).increment(n);
    }
    Ok(n)
}

/// Every `cfg.every`: the buckets past their retention, and the change log's rows older than
/// `change_log`.
pub async fn run(
    cfg: RetentionConfig,
    declared: &[(&'static str, String)],
    change_log: Duration,
    pool: deadpool_postgres::Pool,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    loop {
        match pool.get().await {
            Ok(client) => {
                if let Err(e) = apply(&client, &cfg, declared, chrono::Utc::now()).await {
                    tracing::warn!(error = %format!("{e:#}"), "retention pass failed; next one will retry");
                }
                match changes::prune(&client, change_log).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(table = "change_log", deleted = n, "retention");
                        metrics::counter!("muster_retention_deleted_total", "table" => "change_log")
                            .increment(n);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning the change log failed; next pass will retry")
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention: no database connection"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(cfg.every.max(Duration::from_secs(1))) => {}
        }
    }
}
