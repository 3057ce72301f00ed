//! `GET /api/public/events`: the catalogue with each event's live numbers, for anyone.

use chrono::{DateTime, Utc};
use serde::Serialize;
use warp::Filter;

use crate::problem::Problem;
use crate::problem::answers::Unavailable;
use crate::read::{self, Client, events};
use crate::route::{Ctx, Route, route, with};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicEvent {
    pub event_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: events::Status,
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

#[utoipa::path(get, path = "/api/public/events", tag = "public",
    responses((status = 200, body = PublicEvents), Unavailable))]
async fn list(db: Client, stale_after: chrono::Duration) -> Result<impl warp::Reply, Problem> {
    let events = read::events::list(&db, events::Filter::default(), stale_after)
        .await?
        .into_iter()
        .map(|e| PublicEvent {
            total_registered: e.realtime.as_ref().map(|r| r.total_registered),
            current_attendees: e.realtime.as_ref().map(|r| r.current_attendees),
            attendance_rate: e.realtime.as_ref().map(|r| r.attendance_rate),
            observed_at: e.realtime.as_ref().map(|r| r.observed_at),
            event_id: e.event_id,
            name: e.name,
            event_type: e.event_type,
            status: e.status,
            starts_at: e.starts_at,
            ends_at: e.ends_at,
        })
        .collect();
    Ok(warp::reply::json(&PublicEvents { events }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    route!(list, ctx.db(), with(ctx.stale_after()))
}
