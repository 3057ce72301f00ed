//! `GET /api/public/events`: the catalogue with each event's live numbers.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::problem::Problem;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicEvent {
    pub event_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// scheduled, live, idle, degraded, ended, or stale when no fresh numbers arrived.
    pub status: String,
    pub total_registered: Option<i64>,
    pub current_attendees: Option<i64>,
    pub attendance_rate: Option<f64>,
    /// The time of the snapshot the numbers come from.
    pub observed_at: Option<DateTime<Utc>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicEvents {
    pub events: Vec<PublicEvent>,
}

/// The status a reader sees: dates decide scheduled and ended; otherwise the latest snapshot's,
/// unless it is older than `stale_after`, when old numbers must not pass for live ones.
pub fn public_status(
    now: DateTime<Utc>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    latest: Option<(&str, DateTime<Utc>)>,
    stale_after: chrono::Duration,
) -> String {
    if ends_at.is_some_and(|e| e < now) {
        return "ended".into();
    }
    match latest {
        Some((status, fetched)) if now - fetched <= stale_after => status.into(),
        Some(_) => "stale".into(),
        None if starts_at.is_some_and(|s| s > now) => "scheduled".into(),
        None => "pending".into(),
    }
}

#[utoipa::path(get, path = "/api/public/events", tag = "public",
    responses(
        (status = 200, body = PublicEvents),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    pool: deadpool_postgres::Pool,
    stale_after: chrono::Duration,
) -> Result<PublicEvents, Problem> {
    let client = pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let rows = client
        .query(
            "SELECT c.event_id, c.name, c.event_type, c.starts_at, c.ends_at, r.status,
                    r.total_registered, r.current_attendees, r.attendance_rate,
                    r.observed_at, r.fetched_at
             FROM event_catalogue c LEFT JOIN event_realtime r USING (event_id)
             WHERE NOT c.removed
             ORDER BY c.event_id",
            &[],
        )
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    let now = Utc::now();
    let events = rows
        .iter()
        .map(|r| {
            let starts_at: Option<DateTime<Utc>> = r.get(3);
            let ends_at: Option<DateTime<Utc>> = r.get(4);
            let status: Option<String> = r.get(5);
            let fetched_at: Option<DateTime<Utc>> = r.get(10);
            let latest = status.as_deref().zip(fetched_at);
            PublicEvent {
                event_id: r.get(0),
                name: r.get(1),
                event_type: r.get(2),
                status: public_status(now, starts_at, ends_at, latest, stale_after),
                total_registered: r.get(6),
                current_attendees: r.get(7),
                attendance_rate: r.get(8),
                observed_at: r.get(9),
                starts_at,
                ends_at,
            }
        })
        .collect();
    Ok(PublicEvents { events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_dates_and_staleness() {
        let now = Utc::now();
        let five = chrono::Duration::minutes(5);
        let hour = chrono::Duration::hours(1);
        assert_eq!(
            public_status(now, None, Some(now - hour), Some(("live", now)), five),
            "ended"
        );
        assert_eq!(
            public_status(now, None, None, Some(("live", now - hour)), five),
            "stale"
        );
        assert_eq!(
            public_status(now, None, None, Some(("degraded", now)), five),
            "degraded"
        );
        assert_eq!(
            public_status(now, Some(now + hour), None, None, five),
            "scheduled"
        );
        assert_eq!(public_status(now, None, None, None, five), "pending");
    }
}
