//! `/api/partner/events…`: a partner's granted events, with their latest numbers.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use warp::{Filter, Reply};

use crate::audit::Actor;
use crate::auth::{Keys, Partner, RateUse, Tier};
use crate::body;
use crate::problem::Problem;
use crate::problem::answers::BadRequest;
use crate::read::events::{self, Event, Realtime, Status};
use crate::read::search::MatchedField;
use crate::read::series::MinutePoint;
use crate::read::{Client, Reader};
use crate::resources::partners::{Rotate, RotatedKey, rotate_key};
use crate::resources::public::SearchQuery;
use crate::route::{Ctx, EventId, Route, any, route, with};

/// One event a partner may see, with its latest numbers (absent before the first snapshot).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerEvent {
    pub event_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub venue: Option<String>,
    pub capacity: Option<i64>,
    /// The status every list shows (see the public list): `pending` before the first
    /// snapshot, `stale` when the latest is old.
    pub status: Status,
    pub total_registered: Option<i64>,
    pub current_attendees: Option<i64>,
    pub attendance_rate: Option<f64>,
    pub fetched_at: Option<DateTime<Utc>>,
    /// With `q`: the field that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_field: Option<MatchedField>,
}

/// Also what the partner stream sends with each change.
impl From<&Event> for PartnerEvent {
    fn from(e: &Event) -> Self {
        let realtime = e.realtime.as_ref();
        Self {
            event_id: e.event_id.clone(),
            name: e.name.clone(),
            event_type: e.event_type.clone(),
            venue: e.venue.clone(),
            capacity: e.capacity,
            status: e.status,
            total_registered: realtime.map(|r| r.total_registered),
            current_attendees: realtime.map(|r| r.current_attendees),
            attendance_rate: realtime.map(|r| r.attendance_rate),
            fetched_at: realtime.map(|r| r.fetched_at),
            matched_field: e.matched,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerEvents {
    pub events: Vec<PartnerEvent>,
}

/// `GET /api/partner/events`: the partner's events with their latest numbers; with `q`,
/// those of them it matches, best first (an event not granted is never searched).
#[utoipa::path(get, path = "/api/partner/events", tag = "partner",
    params(SearchQuery),
    responses((status = 200, body = PartnerEvents), BadRequest))]
async fn list(query: SearchQuery, partner: Partner, reader: Reader) -> Result<impl Reply, Problem> {
    let search = query.search()?;
    let filter = events::Filter {
        ids: Some(&partner.event_ids),
        event_type: None,
        search: search.as_ref(),
    };
    let events = reader
        .events(filter)
        .await?
        .iter()
        .map(PartnerEvent::from)
        .collect();
    Ok(warp::reply::json(&PartnerEvents { events }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attendance {
    pub event_id: String,
    /// Absent until the event's first snapshot is projected.
    pub realtime: Option<Realtime>,
    /// The last hour, by minute.
    pub series: Vec<MinutePoint>,
}

/// `GET /api/partner/events/{eventId}/attendance`: realtime numbers and the last hour by minute.
#[utoipa::path(get, path = "/api/partner/events/{eventId}/attendance", tag = "partner",
    params(EventId),
    responses(
        (status = 200, body = Attendance),
        (status = 403, body = Problem, content_type = "application/problem+json",
            description = "The event was not granted to this partner"),
    ))]
async fn attendance(
    event_id: String,
    partner: Partner,
    reader: Reader,
) -> Result<impl Reply, Problem> {
    partner.check(&event_id)?;
    let (realtime, series) = reader.attendance(&event_id).await?;
    Ok(warp::reply::json(&Attendance {
        event_id,
        realtime,
        series,
    }))
}

/// The calling key as its partner sees it: which key, its tier, its grants and its limit.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnKey {
    /// The key's first characters, as listings show it.
    pub prefix: String,
    pub partner_name: String,
    pub tier: Tier,
    /// The events this key may see and subscribe to.
    pub events: Vec<String>,
    pub rate_limit: RateUse,
}

impl OwnKey {
    /// What a counted request of `partner` knows of its key.
    pub fn of(partner: &Partner) -> Result<Self, Problem> {
        let rate_limit = partner
            .rate
            .ok_or_else(|| Problem::internal("a key's route ran without its rate check"))?;
        Ok(Self {
            prefix: partner.key_prefix.clone(),
            partner_name: partner.name.clone(),
            tier: partner.tier,
            events: partner.event_ids.clone(),
            rate_limit,
        })
    }
}

/// `GET /api/partner/key`: the calling key's prefix, tier, grants, rate limit and use.
#[utoipa::path(get, path = "/api/partner/key", tag = "partner",
    responses((status = 200, body = OwnKey)))]
async fn key(partner: Partner) -> Result<impl Reply, Problem> {
    Ok(warp::reply::json(&OwnKey::of(&partner)?))
}

/// `POST /api/partner/key/rotate`: a new key for the calling partner, shown this once; its
/// current keys keep working for `graceSeconds` (default 0), so its systems can switch.
#[utoipa::path(post, path = "/api/partner/key/rotate", tag = "partner",
    request_body = Option<Rotate>,
    responses(
        (status = 200, body = RotatedKey, description = "The new key, shown this once"),
        BadRequest,
    ))]
async fn rotate(
    partner: Partner,
    mut db: Client,
    keys: Keys,
    body: Rotate,
) -> Result<impl Reply, Problem> {
    let by = Actor::partner(&partner);
    Ok(warp::reply::json(
        &rotate_key(&mut db, &keys, partner.id, body, &by).await?,
    ))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, attendance, key, rotate))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    any([
        route!(
            list,
            warp::query::<SearchQuery>(),
            ctx.auth.partner(),
            with(ctx.reader())
        ),
        route!(attendance(event_id), ctx.auth.partner(), with(ctx.reader())),
        route!(key, ctx.auth.partner()),
        route!(
            rotate,
            ctx.auth.partner(),
            ctx.db(),
            with(ctx.auth.keys()),
            body::optional_json()
        ),
    ])
}
