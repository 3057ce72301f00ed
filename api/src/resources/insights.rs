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

use warp::{Filter, Reply};

use crate::auth::Partner;
use crate::problem::Problem;
use crate::problem::answers::NotPremiumOrGranted;
use crate::read::Client;
use crate::route::{Ctx, EventId, Route, any, route, with};

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

/// When the scheduled insights were last recomputed (none before the first run).
pub(crate) async fn computed_at(
    c: &tokio_postgres::Client,
) -> Result<Option<DateTime<Utc>>, Problem> {
    Ok(store::latest_run(c).await?.map(|r| r.computed_at))
}

/// The forecasts of `events` as their viewer reads them: a partner's (`events` given) without
/// the similar past events they stand on, which may be other partners'; the admin's (`None`,
/// every event) whole. What the JSON route and the forecasts page both serve.
pub async fn forecasts_of(
    c: &tokio_postgres::Client,
    events: Option<&[String]>,
) -> Result<Vec<Forecast>, Problem> {
    let all = store::forecasts(c, events).await?;
    Ok(match events {
        Some(_) => all.into_iter().map(Forecast::redacted).collect(),
        None => all,
    })
}

/// `GET /api/premium/events/{eventId}/forecast`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/forecast", tag = "premium",
    params(EventId),
    responses((status = 200, body = EventForecast), NotPremiumOrGranted))]
async fn forecast(event_id: String, partner: Partner, c: Client) -> Result<impl Reply, Problem> {
    partner.check(&event_id)?;
    let ids = [event_id.clone()];
    Ok(warp::reply::json(&EventForecast {
        forecast: forecasts_of(&c, Some(&ids)).await?.pop(),
        recommendations: store::recommendations(&**c, Some(&ids))
            .await?
            .into_iter()
            .map(Recommendation::redacted)
            .collect(),
        computed_at: computed_at(&c).await?,
        event_id,
    }))
}

/// `GET /api/premium/events/{eventId}/behaviour`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/behaviour", tag = "premium",
    params(EventId),
    responses((status = 200, body = EventBehaviour), NotPremiumOrGranted))]
async fn behaviour(
    event_id: String,
    partner: Partner,
    c: Client,
    cfg: InsightsConfig,
) -> Result<impl Reply, Problem> {
    partner.check(&event_id)?;
    Ok(warp::reply::json(&EventBehaviour {
        bins: store::behaviour(&**c, std::slice::from_ref(&event_id)).await?,
        k_anonymity: cfg.k_anonymity,
        computed_at: computed_at(&c).await?,
        event_id,
    }))
}

/// `GET /api/premium/analytics/patterns`: attendance by type × local weekday × local hour,
/// across every event (cells of too few events left out).
#[utoipa::path(get, path = "/api/premium/analytics/patterns", tag = "premium",
    params(PatternsQuery),
    responses(
        (status = 200, body = Patterns),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "An unknown or invalid query parameter"),
    ))]
async fn patterns(
    q: PatternsQuery,
    _partner: Partner,
    c: Client,
    cfg: InsightsConfig,
) -> Result<impl Reply, Problem> {
    Ok(warp::reply::json(
        &Patterns::read(&c, &cfg, q.event_type.as_deref()).await?,
    ))
}

impl Patterns {
    /// The patterns of `event_type` (every type when none) as a premium key reads them: cells
    /// of fewer events than `partner_min_events` left out. What the JSON route and the
    /// patterns page both serve.
    pub async fn read(
        c: &tokio_postgres::Client,
        cfg: &InsightsConfig,
        event_type: Option<&str>,
    ) -> Result<Self, Problem> {
        let run = store::latest_run(c).await?;
        Ok(Self {
            min_events: cfg.partner_min_events,
            patterns: store::patterns(c, event_type, cfg.partner_min_events).await?,
            computed_at: run.as_ref().map(|r| r.computed_at),
            backtest: run.map(|r| r.backtest),
        })
    }
}

/// `GET /api/premium/analytics/roi`: revenue against cost of the partner's events.
#[utoipa::path(get, path = "/api/premium/analytics/roi", tag = "premium",
    responses((status = 200, body = RoiSummary)))]
async fn roi(partner: Partner, c: Client) -> Result<impl Reply, Problem> {
    Ok(warp::reply::json(
        &RoiSummary::read(&c, Some(&partner.event_ids)).await?,
    ))
}

impl RoiSummary {
    /// The ROI of `events` (every event when none, the admin's) and their sums per type: what
    /// the JSON route and the forecasts page both serve.
    pub async fn read(
        c: &tokio_postgres::Client,
        events: Option<&[String]>,
    ) -> Result<Self, Problem> {
        let events = store::roi(c, events).await?;
        Ok(Self {
            by_type: muster_analytics::insights::roi::by_type(&events),
            events,
            computed_at: computed_at(c).await?,
        })
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(forecast, behaviour, patterns, roi))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let cfg = || with(ctx.state.insights.clone());
    any([
        route!(forecast(event_id), ctx.auth.premium(), ctx.db()),
        route!(behaviour(event_id), ctx.auth.premium(), ctx.db(), cfg()),
        route!(
            patterns,
            warp::query::<PatternsQuery>(),
            ctx.auth.premium(),
            ctx.db(),
            cfg()
        ),
        route!(roi, ctx.auth.premium(), ctx.db()),
    ])
}
