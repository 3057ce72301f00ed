//! `/api/premium/analytics/…` and `/api/premium/events/{id}/{forecast,behaviour}`: the insights
//! `muster insights` keeps in the `insight_*` tables, for premium keys, within their grants.

use chrono::{DateTime, Utc};
use muster_analytics::insights::behaviour::Bin;
use muster_analytics::insights::forecast::{Backtest, Forecast};
use muster_analytics::insights::patterns::Pattern;
use muster_analytics::insights::recommend::Recommendation;
use muster_analytics::insights::roi::Roi;
use muster_analytics::insights::{InsightsConfig, tables as store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::partners::{Partner, unavailable};
use crate::problem::Problem;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventForecast {
    pub event_id: String,
    /// None when the event has started and ended, has no registrations yet, or fewer similar
    /// past events than the configured minimum.
    pub forecast: Option<Forecast>,
    pub recommendations: Vec<Recommendation>,
    /// When the insights were last recomputed (none before the first run).
    pub computed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBehaviour {
    pub event_id: String,
    /// Bins with fewer participants than this are not shown.
    pub k_anonymity: usize,
    pub bins: Vec<Bin>,
    pub computed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PatternsQuery {
    /// Only this event type.
    pub event_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Patterns {
    /// Cells drawn from fewer events than this are not shown.
    pub min_events: i64,
    pub patterns: Vec<Pattern>,
    pub computed_at: Option<DateTime<Utc>>,
    /// The forecasts' backtest over every type.
    pub backtest: Option<Backtest>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoiSummary {
    /// The partner's events with a ticket price or a cost.
    pub events: Vec<Roi>,
    /// Those events summed per type and currency.
    pub by_type: Vec<Roi>,
    pub computed_at: Option<DateTime<Utc>>,
}

async fn client(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::Object, warp::Rejection> {
    pool.get().await.map_err(unavailable)
}

async fn computed_at(c: &tokio_postgres::Client) -> Result<Option<DateTime<Utc>>, warp::Rejection> {
    Ok(store::latest_run(c)
        .await
        .map_err(unavailable)?
        .map(|r| r.computed_at))
}

/// `GET /api/premium/events/{eventId}/forecast`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/forecast", tag = "premium",
    security(("api_key" = [])),
    params(("eventId" = String, Path, description = "The event's id")),
    responses(
        (status = 200, body = EventForecast),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium, or the event was not granted"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn forecast(
    event_id: String,
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<EventForecast, warp::Rejection> {
    partner.check(&event_id)?;
    let c = client(&pool).await?;
    let ids = [event_id.clone()];
    Ok(EventForecast {
        forecast: store::forecasts(&**c, Some(&ids))
            .await
            .map_err(unavailable)?
            .pop()
            .map(Forecast::redacted),
        recommendations: store::recommendations(&**c, Some(&ids))
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(Recommendation::redacted)
            .collect(),
        computed_at: computed_at(&c).await?,
        event_id,
    })
}

/// `GET /api/premium/events/{eventId}/behaviour`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/behaviour", tag = "premium",
    security(("api_key" = [])),
    params(("eventId" = String, Path, description = "The event's id")),
    responses(
        (status = 200, body = EventBehaviour),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium, or the event was not granted"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn behaviour(
    event_id: String,
    partner: Partner,
    pool: deadpool_postgres::Pool,
    cfg: InsightsConfig,
) -> Result<EventBehaviour, warp::Rejection> {
    partner.check(&event_id)?;
    let c = client(&pool).await?;
    Ok(EventBehaviour {
        bins: store::behaviour(&**c, std::slice::from_ref(&event_id))
            .await
            .map_err(unavailable)?,
        k_anonymity: cfg.k_anonymity,
        computed_at: computed_at(&c).await?,
        event_id,
    })
}

/// `GET /api/premium/analytics/patterns`: attendance by type × local weekday × local hour,
/// across every event (cells of too few events left out).
#[utoipa::path(get, path = "/api/premium/analytics/patterns", tag = "premium",
    security(("api_key" = [])),
    params(PatternsQuery),
    responses(
        (status = 200, body = Patterns),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "An unknown or invalid query parameter"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patterns(
    q: PatternsQuery,
    _partner: Partner,
    pool: deadpool_postgres::Pool,
    cfg: InsightsConfig,
) -> Result<Patterns, warp::Rejection> {
    let c = client(&pool).await?;
    let run = store::latest_run(&**c).await.map_err(unavailable)?;
    Ok(Patterns {
        min_events: cfg.partner_min_events,
        patterns: store::patterns(&**c, q.event_type.as_deref(), cfg.partner_min_events)
            .await
            .map_err(unavailable)?,
        computed_at: run.as_ref().map(|r| r.computed_at),
        backtest: run.map(|r| r.backtest),
    })
}

/// `GET /api/premium/analytics/roi`: revenue against cost of the partner's events.
#[utoipa::path(get, path = "/api/premium/analytics/roi", tag = "premium",
    security(("api_key" = [])),
    responses(
        (status = 200, body = RoiSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn roi(
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<RoiSummary, warp::Rejection> {
    let c = client(&pool).await?;
    let events = store::roi(&**c, Some(&partner.event_ids))
        .await
        .map_err(unavailable)?;
    Ok(RoiSummary {
        by_type: muster_analytics::insights::roi::by_type(&events),
        events,
        computed_at: computed_at(&c).await?,
    })
}
