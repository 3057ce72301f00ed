//! `GET /api/public/events`: the catalogue with each event's live numbers, for anyone, and
//! the search every event list takes (`q=`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use warp::Filter;

use crate::problem::Problem;
use crate::problem::answers::{BadRequest, Unavailable};
use crate::read::search::{MatchedField, Search};
use crate::read::{Reader, events};

/// The query of an event list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Only events whose name, venue, type or id match this text (English or Korean; partial
    /// words match: `conf` finds `Conference`, `서울` finds `서울국제도서전`), ranked best
    /// first: an exact id, then full-text rank, then trigram similarity. Blank is no filter;
    /// longer than 200 characters is a 400.
    #[param(max_length = 200, pattern = r"^[^\x00]*$")]
    pub q: Option<String>,
}

impl SearchQuery {
    pub fn search(&self) -> Result<Option<Search>, Problem> {
        Search::parse(self.q.as_deref())
    }
}
use crate::route::{Ctx, Route, route, with};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicEvent {
    pub event_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub venue: Option<String>,
    pub status: events::Status,
    pub total_registered: Option<i64>,
    pub current_attendees: Option<i64>,
    pub attendance_rate: Option<f64>,
    /// The time of the snapshot the numbers come from.
    pub observed_at: Option<DateTime<Utc>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// With `q`: the field that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_field: Option<MatchedField>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicEvents {
    pub events: Vec<PublicEvent>,
}

/// The events, by id; with `q`, those it matches, best first.
#[utoipa::path(get, path = "/api/public/events", tag = "public",
    params(SearchQuery),
    responses((status = 200, body = PublicEvents), BadRequest, Unavailable))]
async fn list(query: SearchQuery, reader: Reader) -> Result<impl warp::Reply, Problem> {
    let search = query.search()?;
    let filter = events::Filter {
        search: search.as_ref(),
        ..Default::default()
    };
    let events = reader
        .events(filter)
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
            venue: e.venue,
            status: e.status,
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            matched_field: e.matched,
        })
        .collect();
    Ok(warp::reply::json(&PublicEvents { events }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    route!(list, warp::query::<SearchQuery>(), with(ctx.reader()))
}
