//! `POST /api/ingest/{eventId}/checkins`: check-ins pushed by a registered service.

use muster_ingest::checkins::{CheckinError, Receiver, Signed};
use serde_json::json;
use warp::http::{HeaderMap, StatusCode};

use warp::Filter;

use crate::body::MAX_BODY;
use crate::problem::Problem;
use crate::problem::answers::{NotFound, Unprocessable};
use crate::route::{Ctx, EventId, Route, route, with};

#[utoipa::path(post, path = "/api/ingest/{eventId}/checkins", tag = "ingest",
    params(EventId,
        ("webhook-id" = String, Header), ("webhook-timestamp" = String, Header), ("webhook-signature" = String, Header)),
    request_body = Object,
    responses(
        (status = 202, body = Object, description = "Accepted check-ins"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Bad signature"),
        NotFound,
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        Unprocessable,
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Kafka or PostgreSQL unavailable, or the delivery is still in flight: retry later"),
    ))]
async fn accept(
    event_id: String,
    headers: HeaderMap,
    body: bytes::Bytes,
    receiver: Receiver,
) -> Result<impl warp::Reply, Problem> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    match receiver.accept(&event_id, signed, &body).await {
        Ok(n) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({ "accepted": n })),
            StatusCode::ACCEPTED,
        )),
        Err(e) => Err(match e {
            CheckinError::UnknownEvent(_) => Problem::not_found("No such service", e.to_string()),
            CheckinError::Unauthorized(_) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "bad-signature",
                "The request signature was refused",
            )
            .detail(e.to_string()),
            CheckinError::Replay(_) => Problem::new(
                StatusCode::CONFLICT,
                "replayed-delivery",
                "This delivery was already accepted",
            )
            .detail(e.to_string()),
            CheckinError::Invalid(_) => Problem::unprocessable(
                "invalid-checkins",
                "The check-ins are invalid; none were accepted",
                e.to_string(),
            ),
            CheckinError::InFlight(_) => Problem::unavailable(&e.to_string()),
            CheckinError::Unavailable(e) => e.into(),
        }),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(accept))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    route!(
        accept(event_id),
        warp::header::headers_cloned(),
        warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes()),
        with(ctx.state.receiver.clone())
    )
}
