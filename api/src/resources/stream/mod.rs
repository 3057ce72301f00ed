//! `GET /api/partner/stream`: the change feed as Server-Sent Events, for a partner key (its
//! granted events) or the admin token (every event): live numbers without running a webhook
//! receiver. Each change is one SSE event named by its kind, with the change's number as its
//! `id`; `Last-Event-ID` resumes after it (see [`cursor`] for how nothing is lost or sent
//! twice).

mod cursor;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;
use warp::sse::Event;

use crate::auth::{Keys, Partner, Viewer};
use crate::feed::{Change, ChangeKind, Feed};
use crate::problem::Problem;
use crate::problem::answers::{BadRequest, RateLimited, Unauthorized};
use crate::resources::partner::PartnerEvent;
use crate::route::{Ctx, Route, reject, route, with};
use cursor::{Cursor, Gate, Out};

/// A change, as the `data` of its SSE event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamChange {
    /// Its number, also the SSE `id`: send the last one received back as `Last-Event-ID`.
    pub id: i64,
    pub event_id: String,
    /// Which read model changed (also the SSE event's name): `realtime` numbers, `series`,
    /// `gates`, `alerts`, `service-health`, `catalogue` (the event's metadata).
    #[schema(schema_with = crate::domain::change_kind)]
    pub kind: ChangeKind,
    /// When the projection committed it.
    pub at: DateTime<Utc>,
    /// The event as `GET /api/partner/events` lists it now; absent once the catalogue no longer
    /// lists it (removed).
    pub event: Option<PartnerEvent>,
}

impl From<&Change> for StreamChange {
    fn from(c: &Change) -> Self {
        Self {
            id: c.id,
            event_id: c.event_id.clone(),
            kind: c.kind,
            at: c.at,
            event: c.event.as_ref().map(PartnerEvent::from),
        }
    }
}

/// The `data` of a `ready`, `reset` or `revoked` event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamNotice {
    /// Where to resume from (also the SSE `id`); absent on `revoked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<i64>,
    pub detail: &'static str,
}

/// One Server-Sent Event, as an SSE client reads it (the document describes a stream by one
/// event). `data` is JSON: a `StreamChange` for a change (events `realtime`, `series`, `gates`,
/// `alerts`, `service-health`, `catalogue`), a `StreamNotice` for `ready` (caught up: live
/// changes follow), `reset` (changes after the id sent were dropped by the log's retention:
/// re-read the events, then continue) and `revoked` (the key no longer works; the stream ends).
#[derive(ToSchema)]
#[allow(dead_code)]
struct StreamEvent {
    /// The change's number, or for `ready` and `reset` the number to resume from.
    id: Option<String>,
    #[schema(schema_with = event_names)]
    event: String,
    data: String,
}

const READY: &str = "ready";
const RESET: &str = "reset";
const REVOKED: &str = "revoked";

fn event_names() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            [READY, RESET, REVOKED]
                .into_iter()
                .chain(ChangeKind::ALL.iter().map(|k| k.as_str())),
        ))
        .into()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this change, for clients that cannot send `Last-Event-ID` (which wins
    /// when both are sent).
    #[param(minimum = 0)]
    pub last_event_id: Option<i64>,
}

/// `GET /api/partner/stream`: every later change of the caller's events, as Server-Sent Events.
#[utoipa::path(get, path = "/api/partner/stream", tag = "partner",
    security(("api_key" = []), ("admin_token" = [])),
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0,
            description = "Resume after this change: the `id` of the last event received"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = StreamEvent,
            description = "Changes of the caller's events, one SSE event each, until the \
                client disconnects; first the changes after `Last-Event-ID` still kept (or a \
                `reset`), then `ready`, then live ones. A comment every `[api.feed] keep_alive`."),
        BadRequest,
        Unauthorized,
        RateLimited,
    ))]
async fn stream(
    query: StreamQuery,
    header: Option<i64>,
    viewer: Viewer,
    key: Option<String>,
    ctx: Settings,
) -> Result<impl warp::Reply, Problem> {
    if query.last_event_id.is_some_and(|id| id < 0) {
        return Err(invalid_id());
    }
    let resume = header.or(query.last_event_id);
    let gate = Grants {
        access: match viewer {
            Viewer::Admin => Access::Admin,
            Viewer::Partner(partner) => Access::Partner {
                key: key.unwrap_or_default(),
                partner,
                checked: Instant::now(),
            },
        },
        keys: ctx.keys,
        recheck: ctx.recheck,
    };
    // Subscribed before the log is read: see `cursor`.
    let rx = ctx.feed.subscribe();
    let cursor = match resume {
        Some(id) => Cursor::resume(ctx.feed.clone(), gate, rx, id),
        None => Cursor::fresh(ctx.feed.clone(), gate, rx, ctx.feed.head().await?),
    };
    let open = Open::new();
    let events = futures::stream::unfold((cursor, open), |(mut cursor, open)| async move {
        let out = cursor.next().await?;
        Some((event(out), (cursor, open)))
    });
    // Only ever polled by the connection that owns it, so needing `Sync` costs nothing.
    let events = sync_wrapper::SyncStream::new(events);
    Ok(warp::sse::reply(
        warp::sse::keep_alive()
            .interval(ctx.keep_alive)
            .stream(events),
    ))
}

/// The SSE event of what a cursor sends.
fn event(out: Out) -> Result<Event, Infallible> {
    let (id, name, data) = match out {
        Out::Change(c) => (
            Some(c.id),
            c.kind.as_str(),
            serde_json::to_string(&StreamChange::from(&*c)),
        ),
        Out::Ready(id) => notice(READY, Some(id), "caught up: live changes follow"),
        Out::Reset(id) => notice(
            RESET,
            Some(id),
            "changes after the id sent are no longer kept: re-read the events, then continue from this one",
        ),
        Out::Revoked => notice(REVOKED, None, "the API key was revoked"),
    };
    let mut e = Event::default().event(name);
    if let Some(id) = id {
        e = e.id(id.to_string());
    }
    // Our own types always serialize; an empty object is never sent in practice.
    Ok(e.data(data.unwrap_or_else(|_| "{}".into())))
}

fn notice(
    name: &'static str,
    id: Option<i64>,
    detail: &'static str,
) -> (Option<i64>, &'static str, serde_json::Result<String>) {
    let data = serde_json::to_string(&StreamNotice {
        last_event_id: id,
        detail,
    });
    (id, name, data)
}

/// Counts the open streams while it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!("muster_stream_connections").increment(1.0);
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("muster_stream_connections").decrement(1.0);
    }
}

/// The viewer of a stream: the admin sees every event; a partner's key and grants are read
/// again every `recheck`, so a revoked key or grant stops the flow.
struct Grants {
    access: Access,
    keys: Keys,
    recheck: Duration,
}

enum Access {
    Admin,
    Partner {
        key: String,
        partner: Partner,
        checked: Instant,
    },
}

impl Gate for Grants {
    async fn allows(&mut self, event_id: &str) -> Result<Option<bool>, Problem> {
        let Access::Partner {
            key,
            partner,
            checked,
        } = &mut self.access
        else {
            return Ok(Some(true));
        };
        if checked.elapsed() >= self.recheck {
            match self.keys.lookup(key).await? {
                Some(p) => {
                    *partner = p;
                    *checked = Instant::now();
                }
                None => return Ok(None),
            }
        }
        Ok(Some(partner.may_see(event_id)))
    }
}

/// What every stream shares.
#[derive(Clone)]
struct Settings {
    feed: Feed,
    keys: Keys,
    keep_alive: Duration,
    recheck: Duration,
}

fn invalid_id() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "The request is invalid",
    )
    .detail("Last-Event-ID must be the number of a change (an integer of at least 0)")
}

/// `Last-Event-ID` read from its bytes: digits only (a header that is not text is a 400, not
/// a 500). SSE clients send it only once they have an id, so an empty one is refused too.
fn parse_last_event_id(value: Option<&[u8]>) -> Result<Option<i64>, Problem> {
    let Some(bytes) = value else {
        return Ok(None);
    };
    let digits = bytes.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid_id());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(invalid_id)
}

fn last_event_id() -> impl Filter<Extract = (Option<i64>,), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned().and_then(|headers: warp::http::HeaderMap| async move {
        parse_last_event_id(headers.get("last-event-id").map(|v| v.as_bytes())).map_err(reject)
    })
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(stream), components(schemas(StreamChange, StreamNotice)))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let settings = Settings {
        feed: ctx.state.feed.clone(),
        keys: ctx.state.feed.keys(),
        keep_alive: ctx.cfg.feed.keep_alive,
        recheck: ctx.cfg.feed.recheck_grants,
    };
    route!(
        stream,
        warp::query::<StreamQuery>(),
        last_event_id(),
        ctx.auth.viewer(),
        warp::header::optional::<String>("x-api-key"),
        with(settings),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_is_a_change_number() {
        assert_eq!(parse_last_event_id(None).unwrap(), None);
        assert_eq!(parse_last_event_id(Some(b"42")).unwrap(), Some(42));
        assert_eq!(parse_last_event_id(Some(b"0")).unwrap(), Some(0));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"abc",
            b"1.5",
            b"\xff\xfe",
            b"99999999999999999999",
        ] {
            let p = parse_last_event_id(Some(bad)).unwrap_err();
            assert_eq!(p.status, 400, "{bad:?}");
        }
    }

    #[test]
    fn a_change_is_an_event_named_by_its_kind_with_its_number() {
        let change = Change {
            id: 7,
            event_id: "e1".into(),
            kind: ChangeKind::ServiceHealth,
            at: Utc::now(),
            event: None,
        };
        let data = serde_json::to_value(StreamChange::from(&change)).unwrap();
        assert_eq!(data["id"], 7);
        assert_eq!(data["eventId"], "e1");
        assert_eq!(data["kind"], "service-health");
        assert!(data["event"].is_null());
        let names: Vec<&str> = [READY, RESET, REVOKED]
            .into_iter()
            .chain(ChangeKind::ALL.iter().map(|k| k.as_str()))
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no kind is named like a notice");
    }
}
