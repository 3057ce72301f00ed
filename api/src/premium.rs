//! `/api/premium/…`: the stored series and alert history of an event, for premium keys.
//! Windows are bounded (`range::window`) and answers capped, so no request scans a table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dashboard::Alert;
use crate::partners::{Partner, unavailable};
use crate::problem::Problem;
use crate::range::{Resolution, Stored, window};

/// The most points one answer carries; `truncated` says when there were more.
pub const MAX_POINTS: i64 = 10_000;

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
pub struct SeriesPoint {
    pub bucket: DateTime<Utc>,
    pub samples: i64,
    pub attendees_avg: f64,
    pub attendees_max: i64,
    pub attendees_min: i64,
    pub attendees_last: i64,
    pub registered_max: i64,
    pub attendance_rate_avg: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub event_id: String,
    pub resolution: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub points: Vec<SeriesPoint>,
    /// More than the answer's cap of points fell in the window.
    pub truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatePoint {
    pub gate_id: String,
    pub bucket: DateTime<Utc>,
    pub entries: i64,
    pub exits: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateSeries {
    pub event_id: String,
    pub resolution: String,
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

fn capped<T>(mut rows: Vec<T>) -> (Vec<T>, bool) {
    let truncated = rows.len() as i64 > MAX_POINTS;
    rows.truncate(MAX_POINTS as usize);
    (rows, truncated)
}

/// What every premium route does first: the grant (403), the window (400), a connection.
async fn open(
    event_id: &str,
    partner: &Partner,
    pool: &deadpool_postgres::Pool,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(deadpool_postgres::Object, DateTime<Utc>, DateTime<Utc>), warp::Rejection> {
    partner.check(event_id)?;
    let (from, to) = window(from, to)?;
    let client = pool.get().await.map_err(unavailable)?;
    Ok((client, from, to))
}

/// `GET /api/premium/events/{eventId}/series`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/series", tag = "premium",
    security(("api_key" = [])),
    params(("eventId" = String, Path, description = "The event's id"), SeriesQuery),
    responses(
        (status = 200, body = Series),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium, or the event was not granted"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn series(
    event_id: String,
    q: SeriesQuery,
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<Series, warp::Rejection> {
    let (client, from, to) = open(&event_id, &partner, &pool, q.from, q.to).await?;
    let resolution: Resolution = q.resolution.unwrap_or_default().into();
    let rows = client
        .query(
            &format!(
                "SELECT bucket, samples, attendees_sum::float8 / samples, attendees_max,
                        attendees_min, last_attendees, registered_max, rate_sum / samples
                 FROM {} WHERE event_id = $1 AND bucket >= $2 AND bucket < $3
                 ORDER BY bucket LIMIT $4",
                resolution.event_table()
            ),
            &[&event_id, &from, &to, &(MAX_POINTS + 1)],
        )
        .await
        .map_err(unavailable)?;
    let (rows, truncated) = capped(rows);
    Ok(Series {
        event_id,
        resolution: resolution.as_str().into(),
        from,
        to,
        points: rows
            .iter()
            .map(|r| SeriesPoint {
                bucket: r.get(0),
                samples: r.get(1),
                attendees_avg: r.get(2),
                attendees_max: r.get(3),
                attendees_min: r.get(4),
                attendees_last: r.get(5),
                registered_max: r.get(6),
                attendance_rate_avg: r.get(7),
            })
            .collect(),
        truncated,
    })
}

/// `GET /api/premium/events/{eventId}/gates`.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/gates", tag = "premium",
    security(("api_key" = [])),
    params(("eventId" = String, Path, description = "The event's id"), SeriesQuery),
    responses(
        (status = 200, body = GateSeries),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium, or the event was not granted"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn gates(
    event_id: String,
    q: SeriesQuery,
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<GateSeries, warp::Rejection> {
    let (client, from, to) = open(&event_id, &partner, &pool, q.from, q.to).await?;
    let resolution: Resolution = q.resolution.unwrap_or_default().into();
    let rows = client
        .query(
            &format!(
                "SELECT gate_id, bucket, entries, exits
                 FROM {} WHERE event_id = $1 AND bucket >= $2 AND bucket < $3
                 ORDER BY bucket, gate_id LIMIT $4",
                resolution.gate_table()
            ),
            &[&event_id, &from, &to, &(MAX_POINTS + 1)],
        )
        .await
        .map_err(unavailable)?;
    let (rows, truncated) = capped(rows);
    Ok(GateSeries {
        event_id,
        resolution: resolution.as_str().into(),
        from,
        to,
        points: rows
            .iter()
            .map(|r| GatePoint {
                gate_id: r.get(0),
                bucket: r.get(1),
                entries: r.get(2),
                exits: r.get(3),
            })
            .collect(),
        truncated,
    })
}

/// `GET /api/premium/events/{eventId}/alerts`: raised in the window, resolved or not.
#[utoipa::path(get, path = "/api/premium/events/{eventId}/alerts", tag = "premium",
    security(("api_key" = [])),
    params(("eventId" = String, Path, description = "The event's id"), WindowQuery),
    responses(
        (status = 200, body = AlertHistory),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Not premium, or the event was not granted"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn alerts(
    event_id: String,
    q: WindowQuery,
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<AlertHistory, warp::Rejection> {
    let (client, from, to) = open(&event_id, &partner, &pool, q.from, q.to).await?;
    let rows = client
        .query(
            "SELECT alert_id, event_id, kind, subject, severity, message, state, raised_at,
                    resolved_at
             FROM alerts WHERE event_id = $1 AND raised_at >= $2 AND raised_at < $3
             ORDER BY raised_at, alert_id LIMIT $4",
            &[&event_id, &from, &to, &(MAX_POINTS + 1)],
        )
        .await
        .map_err(unavailable)?;
    let (rows, truncated) = capped(rows);
    Ok(AlertHistory {
        event_id,
        from,
        to,
        alerts: rows.iter().map(crate::dashboard::alert).collect(),
        truncated,
    })
}
