//! `/api/admin/services`: register (validated), list with health, remove. Admin only.

use muster_ingest::EventServiceConfig;
use muster_ingest::registrar::{RegisterError, Registrar};
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::audit::{self, Action, Actor};
use crate::problem::Problem;
use crate::problem::answers::{NotFound, Unprocessable};
use crate::route::{Ctx, EventId, Route, any, location, route, with};

#[utoipa::path(post, path = "/api/admin/services", tag = "admin",
    request_body = Object,
    responses(
        (status = 201, body = Object, description = "Registered, with the webhook secret shown once"), (status = 200, body = Object, description = "Updated"),
        Unprocessable,
    ))]
async fn register(
    registrar: Registrar,
    svc: EventServiceConfig,
) -> Result<warp::reply::Response, Problem> {
    let event_id = svc.event_id.clone();
    let r = register_service(&registrar, svc).await?;
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
    Ok(warp::reply::with_header(reply, "location", location!(get, event_id)).into_response())
}

/// Registers (or updates) a service as the admin, with its audit entry: the JSON route's and
/// the admin page's one way in. The registrar commits on its own connections, so the entry is
/// recorded right after.
pub async fn register_service(
    registrar: &Registrar,
    svc: EventServiceConfig,
) -> Result<muster_ingest::registrar::Registered, Problem> {
    let event_id = svc.event_id.clone();
    let service_name = svc.service_name.clone();
    let r = registrar.register(svc).await.map_err(|e| match e {
        RegisterError::Invalid(reason) => Problem::unprocessable(
            "invalid-registration",
            "The registration is invalid",
            reason,
        ),
        RegisterError::Unhealthy(reason) => Problem::unprocessable(
            "service-unhealthy",
            "The service failed its health check; nothing was saved",
            reason,
        ),
        RegisterError::Internal(e) => e.into(),
    })?;
    let action = if r.created {
        Action::ServiceRegister
    } else {
        Action::ServiceUpdate
    };
    let details = json!({ "serviceName": service_name, "initialSyncOk": r.initial_sync.is_ok() });
    audit::record_after(&registrar.pool, &Actor::Admin, action, &event_id, details).await;
    Ok(r)
}

#[utoipa::path(get, path = "/api/admin/services", tag = "admin",
    responses((status = 200, body = Object, description = "Every service with its health")))]
async fn list(registrar: Registrar) -> Result<impl Reply, Problem> {
    let services = registrar.list(None).await?;
    Ok(warp::reply::json(&json!({ "services": services })))
}

#[utoipa::path(get, path = "/api/admin/services/{eventId}", tag = "admin",
    params(EventId),
    responses((status = 200, body = Object), NotFound))]
async fn get(event_id: String, registrar: Registrar) -> Result<impl Reply, Problem> {
    match registrar.list(Some(&event_id)).await?.pop() {
        Some(s) => Ok(warp::reply::json(&s)),
        None => Err(not_registered(&event_id)),
    }
}

#[utoipa::path(delete, path = "/api/admin/services/{eventId}", tag = "admin",
    params(EventId),
    responses((status = 204, description = "Removed"), NotFound))]
async fn remove(event_id: String, registrar: Registrar) -> Result<impl Reply, Problem> {
    remove_service(&registrar, &event_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a service as the admin, with its audit entry (recorded right after, as for
/// registration); an unknown one is a 404.
pub async fn remove_service(registrar: &Registrar, event_id: &str) -> Result<(), Problem> {
    if !registrar.remove(event_id).await? {
        return Err(not_registered(event_id));
    }
    let details = json!({});
    audit::record_after(
        &registrar.pool,
        &Actor::Admin,
        Action::ServiceRemove,
        event_id,
        details,
    )
    .await;
    Ok(())
}

fn not_registered(event_id: &str) -> Problem {
    Problem::not_found(
        "No such service",
        format!("no service is registered for event {event_id}"),
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(register, list, get, remove))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let registrar = || with(ctx.state.registrar.clone());
    any([
        route!(register, ctx.auth.admin(), registrar(), crate::body::json()),
        route!(list, ctx.auth.admin(), registrar()),
        route!(get(event_id), ctx.auth.admin(), registrar()),
        route!(remove(event_id), ctx.auth.admin(), registrar()),
    ])
}
