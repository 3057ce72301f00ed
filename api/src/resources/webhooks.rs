//! `/api/partner/webhooks`: a partner's subscriptions, their delivery log and replays. The work
//! is `muster_webhooks::subscriptions`'s; this maps it to HTTP.

use muster_webhooks::subscriptions::{
    Delivery, Endpoint, EndpointWithSecret, NewEndpoint, ReplayRequest, Replayed, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::audit::{Action, Actor, record_after};
use crate::auth::Partner;
use crate::body;
use crate::domain::text_enum;
use crate::problem::Problem;
use crate::problem::answers::{BadRequest, NotFound, Unprocessable};
use crate::route::{Ctx, Route, any, location, route, with};

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(detail) => {
                Problem::unprocessable("invalid-webhook", "The webhook is invalid", detail)
            }
            StoreError::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such webhook")
            }
            other => Problem::unavailable(&other),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub webhooks: Vec<Endpoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret keeps signing too (a second signature), default 0.
    #[serde(default)]
    pub grace_seconds: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

text_enum!(
    /// A delivery's state in the log.
    pub enum DeliveryState {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

/// The owner of a partner's subscriptions in the store.
fn owner(partner: &Partner) -> String {
    partner.id.to_string()
}

/// Records a partner's change to its webhooks in the audit log, after the store committed it.
async fn audited(
    store: &Store,
    partner: &Partner,
    action: Action,
    id: &str,
    details: serde_json::Value,
) {
    record_after(&store.pool, &Actor::partner(partner), action, id, details).await;
}

/// The `{id}` of a webhook's routes.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct WebhookId(
    /// The webhook's id
    String,
);

#[utoipa::path(post, path = "/api/partner/webhooks", tag = "webhooks",
    request_body = NewEndpoint,
    responses(
        (status = 201, body = EndpointWithSecret, description = "Created; the secret is shown this once"),
        BadRequest,
        Unprocessable,
    ))]
async fn create(partner: Partner, store: Store, body: NewEndpoint) -> Result<Response, Problem> {
    let made = store.create(&owner(&partner), body).await?;
    let details = serde_json::json!({
        "url": made.endpoint.url, "eventTypes": made.endpoint.event_types,
    });
    audited(
        &store,
        &partner,
        Action::WebhookCreate,
        &made.endpoint.id,
        details,
    )
    .await;
    let location = location!(get, made.endpoint.id);
    Ok(warp::reply::with_header(
        warp::reply::with_status(warp::reply::json(&made), StatusCode::CREATED),
        "location",
        location,
    )
    .into_response())
}

#[utoipa::path(get, path = "/api/partner/webhooks", tag = "webhooks",
    responses((status = 200, body = EndpointList)))]
async fn list(partner: Partner, store: Store) -> Result<Response, Problem> {
    let webhooks = store.list(&owner(&partner)).await?;
    Ok(warp::reply::json(&EndpointList { webhooks }).into_response())
}

#[utoipa::path(get, path = "/api/partner/webhooks/{id}", tag = "webhooks",
    params(WebhookId),
    responses((status = 200, body = Endpoint), NotFound))]
async fn get(id: String, partner: Partner, store: Store) -> Result<Response, Problem> {
    let e = store.get(&owner(&partner), &id).await?;
    Ok(warp::reply::json(&e).into_response())
}

#[utoipa::path(delete, path = "/api/partner/webhooks/{id}", tag = "webhooks",
    params(WebhookId),
    responses((status = 204, description = "Deleted; pending deliveries are cancelled"), NotFound))]
async fn delete(id: String, partner: Partner, store: Store) -> Result<Response, Problem> {
    store.delete(&owner(&partner), &id).await?;
    audited(
        &store,
        &partner,
        Action::WebhookDelete,
        &id,
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/partner/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(WebhookId),
    request_body = Option<RotateSecret>,
    responses(
        (status = 200, body = EndpointWithSecret, description = "The new secret, shown this once"),
        BadRequest,
        NotFound,
    ))]
async fn rotate(
    id: String,
    partner: Partner,
    store: Store,
    body: RotateSecret,
) -> Result<Response, Problem> {
    let e = store
        .rotate(&owner(&partner), &id, body.grace_seconds)
        .await?;
    let details = serde_json::json!({ "graceSeconds": body.grace_seconds });
    audited(&store, &partner, Action::WebhookRotate, &id, details).await;
    Ok(warp::reply::json(&e).into_response())
}

#[utoipa::path(post, path = "/api/partner/webhooks/{id}/enable", tag = "webhooks",
    params(WebhookId),
    responses((status = 200, body = Endpoint), NotFound))]
async fn enable(id: String, partner: Partner, store: Store) -> Result<Response, Problem> {
    let e = store.enable(&owner(&partner), &id).await?;
    Ok(warp::reply::json(&e).into_response())
}

#[utoipa::path(get, path = "/api/partner/webhooks/{id}/deliveries", tag = "webhooks",
    params(WebhookId, DeliveriesQuery),
    responses((status = 200, body = DeliveryList), BadRequest, NotFound))]
async fn deliveries(
    id: String,
    q: DeliveriesQuery,
    partner: Partner,
    store: Store,
) -> Result<Response, Problem> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000) as i64;
    let deliveries = store
        .deliveries(
            &owner(&partner),
            &id,
            q.state.map(DeliveryState::as_str),
            limit,
        )
        .await?;
    Ok(warp::reply::json(&DeliveryList { deliveries }).into_response())
}

#[utoipa::path(post, path = "/api/partner/webhooks/{id}/replay", tag = "webhooks",
    params(WebhookId),
    request_body = ReplayRequest,
    responses((status = 202, body = Replayed), BadRequest, NotFound, Unprocessable))]
async fn replay(
    id: String,
    partner: Partner,
    store: Store,
    body: ReplayRequest,
) -> Result<Response, Problem> {
    let details = serde_json::json!({
        "deliveryId": body.delivery_id, "from": body.from, "to": body.to,
    });
    let r = store.replay(&owner(&partner), &id, body).await?;
    let details = serde_json::json!({ "request": details, "queued": r.queued });
    audited(&store, &partner, Action::WebhookReplay, &id, details).await;
    Ok(warp::reply::with_status(warp::reply::json(&r), StatusCode::ACCEPTED).into_response())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, get, delete, rotate, enable, deliveries, replay),
    components(schemas(DeliveryState))
)]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let store = || with(ctx.state.webhooks.clone());
    let partner = || ctx.auth.partner();
    any([
        route!(create, partner(), store(), body::json()),
        route!(list, partner(), store()),
        route!(get(id), partner(), store()),
        route!(delete(id), partner(), store()),
        route!(rotate(id), partner(), store(), body::optional_json()),
        route!(enable(id), partner(), store()),
        route!(
            deliveries(id),
            warp::query::<DeliveriesQuery>(),
            partner(),
            store()
        ),
        route!(replay(id), partner(), store(), body::json()),
    ])
}
