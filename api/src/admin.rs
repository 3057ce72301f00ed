//! `/api/admin/services`: register (validated), list with health, remove. Bearer token auth.

use muster_ingest::EventServiceConfig;
use muster_ingest::registrar::{RegisterError, Registrar};
use serde_json::json;
use subtle::ConstantTimeEq;
use warp::Filter;
use warp::http::StatusCode;

use crate::problem::Problem;

/// Passes when the request carries `Authorization: Bearer <admin token>` (compared in constant
/// time); the admin API is closed while no token is configured.
pub fn require_admin(
    token: Option<muster_runtime::secrets::Secret>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let token = token.clone();
            async move {
                check_admin(token.as_ref().map(|t| t.expose()), header.as_deref())
                    .map_err(warp::reject::custom)
            }
        })
        .untuple_one()
}

/// The admin check on a raw `Authorization` header value.
pub fn check_admin(expected: Option<&str>, header: Option<&str>) -> Result<(), Problem> {
    // A blank token is no token: never let an empty header match an empty setting.
    let Some(expected) = expected.filter(|t| !t.trim().is_empty()) else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "The admin API is disabled",
        )
        .detail("set MUSTER_ADMIN_TOKEN to enable it"));
    };
    let given = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid admin bearer token is required",
        ))
    }
}

fn internal(e: anyhow::Error) -> warp::Rejection {
    warp::reject::custom(Problem::unavailable(&format!("{e:#}")))
}

#[utoipa::path(post, path = "/api/admin/services", tag = "admin",
    security(("admin_token" = [])),
    request_body = Object,
    responses(
        (status = 201, body = Object, description = "Registered, with the webhook secret shown once"), (status = 200, body = Object, description = "Updated"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    registrar: Registrar,
    svc: EventServiceConfig,
) -> Result<warp::reply::Response, warp::Rejection> {
    use warp::Reply;
    let event_id = svc.event_id.clone();
    match registrar.register(svc).await {
        Ok(r) => {
            let status = if r.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = json!({
                "service": r.service,
                "webhookSecret": r.webhook_secret,
                "initialSync": match &r.initial_sync {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => json!({"ok": false, "error": e}),
                },
            });
            let reply = warp::reply::with_status(warp::reply::json(&body), status);
            Ok(warp::reply::with_header(
                reply,
                "location",
                format!("/api/admin/services/{event_id}"),
            )
            .into_response())
        }
        Err(RegisterError::Invalid(reason)) => Err(warp::reject::custom(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-registration",
                "The registration is invalid",
            )
            .detail(reason),
        )),
        Err(RegisterError::Unhealthy(reason)) => Err(warp::reject::custom(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "service-unhealthy",
                "The service failed its health check; nothing was saved",
            )
            .detail(reason),
        )),
        Err(RegisterError::Internal(e)) => Err(internal(e)),
    }
}

#[utoipa::path(get, path = "/api/admin/services", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Object, description = "Every service with its health"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(registrar: Registrar) -> Result<impl warp::Reply, warp::Rejection> {
    let services = registrar.list(None).await.map_err(internal)?;
    Ok(warp::reply::json(&json!({ "services": services })))
}

#[utoipa::path(get, path = "/api/admin/services/{eventId}", tag = "admin",
    security(("admin_token" = [])),
    params(("eventId" = String, Path, description = "The event's id")),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    event_id: String,
    registrar: Registrar,
) -> Result<impl warp::Reply, warp::Rejection> {
    match registrar
        .list(Some(&event_id))
        .await
        .map_err(internal)?
        .pop()
    {
        Some(s) => Ok(warp::reply::json(&s)),
        None => Err(not_registered(&event_id)),
    }
}

#[utoipa::path(delete, path = "/api/admin/services/{eventId}", tag = "admin",
    security(("admin_token" = [])),
    params(("eventId" = String, Path, description = "The event's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    event_id: String,
    registrar: Registrar,
) -> Result<impl warp::Reply, warp::Rejection> {
    if registrar.remove(&event_id).await.map_err(internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_registered(&event_id))
    }
}

fn not_registered(event_id: &str) -> warp::Rejection {
    warp::reject::custom(
        Problem::new(StatusCode::NOT_FOUND, "not-found", "No such service")
            .detail(format!("no service is registered for event {event_id}")),
    )
}
