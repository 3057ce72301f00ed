//! Cross-event analytics (the seed's `CrossEventAnalytics`, on DataFusion instead of Spark):
//! attendance patterns, anonymized behaviour, forecasts with their backtest, ROI and
//! recommendations. `muster insights` recomputes them on a schedule into `insight_*` tables
//! (`store`), which the API serves and analysts query like any projection.

pub mod behaviour;
pub mod forecast;
pub mod job;
pub mod live;
pub mod outcomes;
pub mod patterns;
pub mod recommend;
pub mod roi;
pub mod tables;

use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use forecast::ForecastConfig;

/// `[insights]`: what `muster insights` computes, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsightsConfig {
    /// How often the insights are recomputed.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// The patterns' and behaviour's period (the trend compares it with the one before).
    #[serde(with = "humantime_serde")]
    pub range: Duration,
    /// Behaviour bins with fewer participants than this are suppressed everywhere.
    pub k_anonymity: usize,
    /// Pattern cells drawn from fewer events than this are not shown to partners (a cell of
    /// one event would show another partner's event).
    pub partner_min_events: i64,
    pub forecast: ForecastConfig,
    /// `[insights.live]`: the rules the API applies to the current numbers.
    pub live: live::LiveRules,
}

impl Default for InsightsConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(900),
            range: Duration::from_secs(365 * 86_400),
            k_anonymity: 10,
            partner_min_events: 3,
            forecast: ForecastConfig::default(),
            live: live::LiveRules::default(),
        }
    }
}

impl InsightsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.k_anonymity < 2 {
            return Err("insights.k_anonymity must be at least 2".into());
        }
        if !(0.0 < self.forecast.interval && self.forecast.interval < 1.0) {
            return Err("insights.forecast.interval must be between 0 and 1".into());
        }
        if self.forecast.neighbours < self.forecast.min_neighbours.max(2) {
            return Err(
                "insights.forecast.neighbours must be at least min_neighbours and 2".into(),
            );
        }
        if self.partner_min_events < 1 {
            return Err("insights.partner_min_events must be at least 1".into());
        }
        if self.every.is_zero() || self.range.is_zero() {
            return Err("insights.every and insights.range must be above zero".into());
        }
        self.live.validate()
    }
}

/// Everything one run computes.
#[derive(Debug, Clone)]
pub struct Report {
    pub computed_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub patterns: Vec<patterns::Pattern>,
    pub behaviour: Vec<behaviour::Bin>,
    pub outcomes: Vec<outcomes::Outcome>,
    pub forecasts: Vec<forecast::Forecast>,
    pub backtest: forecast::Backtest,
    /// Per event type, for the types with past events to forecast.
    pub backtest_by_type: std::collections::BTreeMap<String, forecast::Backtest>,
    pub roi: Vec<roi::Roi>,
    pub recommendations: Vec<recommend::Recommendation>,
}

/// One run over `ctx` (projections, and the archive when it has check-ins) as of `now`.
/// `known` are outcomes kept from earlier runs: figures the series no longer hold (minute
/// buckets past retention) are taken from them.
pub async fn compute(
    ctx: &SessionContext,
    cfg: &InsightsConfig,
    now: DateTime<Utc>,
    known: &[outcomes::Outcome],
) -> anyhow::Result<Report> {
    use anyhow::Context;
    let range = chrono::Duration::from_std(cfg.range)?;
    let from = now - range;
    let patterns = patterns::compute(ctx, patterns::Source::Projections, from, now)
        .await
        .context("attendance patterns")?;
    let behaviour = if ctx.table_exist("archive_checkins")? {
        behaviour::compute(ctx, cfg.k_anonymity, from, now)
            .await
            .context("behaviour")?
    } else {
        Vec::new()
    };
    let mut outcomes = outcomes::compute(ctx).await.context("event outcomes")?;
    outcomes::merge_known(&mut outcomes, known);
    let (forecasts, backtest_by_type, backtest) =
        forecast::forecast_all(&outcomes, now, &cfg.forecast);
    let roi = roi::compute(&outcomes, now);
    let recommendations =
        recommend::compute(&forecasts, &outcomes, &patterns, cfg.partner_min_events);
    Ok(Report {
        computed_at: now,
        from,
        patterns,
        behaviour,
        outcomes,
        forecasts,
        backtest,
        backtest_by_type,
        roi,
        recommendations,
    })
}

/// Runs `sql` and reads its rows into `T` by column name.
pub(crate) async fn sql_rows<T: DeserializeOwned>(
    ctx: &SessionContext,
    sql: &str,
) -> anyhow::Result<Vec<T>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    crate::to_json_rows(&batches)?
        .into_iter()
        .map(|v| Ok(serde_json::from_value(v)?))
        .collect()
}
