//! `/api/premium/events/{eventId}/{series,gates,alerts}`: the stored series and alert history
//! of an event, for premium keys. Windows are bounded (`range::window`) and answers capped, so
//! no request scans a table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::{Filter, Reply};

use crate::auth::Partner;
use crate::problem::Problem;
use crate::problem::answers::{BadRequest, NotPremiumOrGranted};
use crate::range::{Resolution, Stored, window};
use crate::read::alerts::{self, Alert};
use crate::read::series::{self, GatePoint, SeriesPoint, Window};
use crate::read::{Client, capped};
use crate::route::{Ctx, EventId, Route, any, route};

/// The most points one answer carries; `truncated` says when there were more.
pub const MAX_POINTS: usize = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// minute or hour (default).
    pub resolution: Option<Stored>,
    /// RFC 3339; default 24 hours before `to`; at most 400 days before `to` (an earlier
    /// `from` is moved up, and the answer's `from` says so).
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// RFC 3339; default 24 hours before `to`; at most 400 days before `to` (an earlier
    /// `from` is moved up, and the answer's `from` says so).
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub event_id: String,
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub points: Vec<SeriesPoint>,
    /// More than the answer's cap of points fell in the window.
    pub truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateSeries {
    pub event_id: String,
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub points: Vec<GatePoint>,
    pub truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertHistory {
    pub event_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub alerts: Vec<Alert>,
    pub truncated: bool,
}

/// What every premium route checks first: the grant (403), then the window (400).
fn open(
    event_id: &str,
    partner: &Partner,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
    partner.check(event_id)?;
    window(from, to)
}

/// The points of the window the query asks for, as `read` reads them (one row past the cap,
/// so that the answer knows whether it was truncated).
async fn window_points<'a, T, Fut>(
    event_id: &'a str,
    q: &SeriesQuery,
    partner: &Partner,
    read: impl FnOnce(Window<'a>) -> Fut,
) -> Result<(Window<'a>, Vec<T>, bool), Problem>
where
    Fut: Future<Output = Result<Vec<T>, Problem>>,
{
    let (from, to) = open(event_id, partner, q.from, q.to)?;
    let w = Window {
        event_id,
        resolution: q.resolution.unwrap_or_default().into(),
        from,
        to,
        limit: MAX_POINTS as i64 + 1,
    };
    let (points, truncated) = capped(read(w).await?, MAX_POINTS);
    Ok((w, points, truncated))
}

/// `GET /api/premium/events/{eventId}/series`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/series", tag = "premium",
    params(EventId, SeriesQuery),
    responses((status = 200, body = Series), BadRequest, NotPremiumOrGranted))]
async fn series(
    event_id: String,
    q: SeriesQuery,
    partner: Partner,
    db: Client,
) -> Result<impl Reply, Problem> {
    let (w, points, truncated) =
        window_points(&event_id, &q, &partner, |w| series::event_points(&db, w)).await?;
    Ok(warp::reply::json(&Series {
        resolution: w.resolution,
        from: w.from,
        to: w.to,
        points,
        truncated,
        event_id,
    }))
}

/// `GET /api/premium/events/{eventId}/gates`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/gates", tag = "premium",
    params(EventId, SeriesQuery),
    responses((status = 200, body = GateSeries), BadRequest, NotPremiumOrGranted))]
async fn gates(
    event_id: String,
    q: SeriesQuery,
    partner: Partner,
    db: Client,
) -> Result<impl Reply, Problem> {
    let (w, points, truncated) =
        window_points(&event_id, &q, &partner, |w| series::gate_points(&db, w)).await?;
    Ok(warp::reply::json(&GateSeries {
        resolution: w.resolution,
        from: w.from,
        to: w.to,
        points,
        truncated,
        event_id,
    }))
}

/// `GET /api/premium/events/{eventId}/alerts`: raised in the window, resolved or not.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/alerts", tag = "premium",
    params(EventId, WindowQuery),
    responses((status = 200, body = AlertHistory), BadRequest, NotPremiumOrGranted))]
async fn alert_history(
    event_id: String,
    q: WindowQuery,
    partner: Partner,
    db: Client,
) -> Result<impl Reply, Problem> {
    let (from, to) = open(&event_id, &partner, q.from, q.to)?;
    let rows = alerts::raised_between(&db, &event_id, from, to, MAX_POINTS as i64 + 1).await?;
    let (alerts, truncated) = capped(rows, MAX_POINTS);
    Ok(warp::reply::json(&AlertHistory {
        event_id,
        from,
        to,
        alerts,
        truncated,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(series, gates, alert_history), components(schemas(Stored)))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let query = warp::query::<SeriesQuery>;
    any([
        route!(series(event_id), query(), ctx.auth.premium(), ctx.db()),
        route!(gates(event_id), query(), ctx.auth.premium(), ctx.db()),
        route!(
            alert_history(event_id),
            warp::query::<WindowQuery>(),
            ctx.auth.premium(),
            ctx.db()
        ),
    ])
}
