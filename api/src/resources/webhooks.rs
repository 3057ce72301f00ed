//! `/api/partner/webhooks`: a partner's subscriptions, their delivery log and replays. The work
//! is `muster_webhooks::subscriptions`'s; this maps it to HTTP.

use muster_webhooks::EventType;
use muster_webhooks::log::{
    Delivery, DeliveryDetail, DeliveryFilter, DeliveryState, ReplayRequest, Replayed, TestEvent,
};
use muster_webhooks::payloads::{Catalogue, catalogue};
use muster_webhooks::subscriptions::{
    Endpoint, EndpointWithSecret, NewEndpoint, Store, StoreError, UpdateEndpoint,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::audit::{Action, Actor, record_after};
use crate::auth::Partner;
use crate::body;
use crate::problem::Problem;
use crate::problem::answers::{BadRequest, NotFound, Unprocessable};
use crate::route::{Ctx, Route, any, location, route, with};

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(detail) => {
                Problem::unprocessable("invalid-webhook", "The webhook is invalid", detail)
            }
            StoreError::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "No such webhook or delivery",
            ),
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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only deliveries of this event type.
    pub event_type: Option<EventType>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl DeliveriesQuery {
    pub fn filter(&self) -> DeliveryFilter {
        DeliveryFilter {
            state: self.state,
            event_type: self.event_type,
            limit: self.limit.unwrap_or(100).clamp(1, 1000) as i64,
        }
    }
}

/// The owner of a partner's subscriptions in the store.
pub fn owner(partner: &Partner) -> String {
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

/// The `{id}` and `{deliveryId}` of one delivery's route.
#[derive(IntoParams)]
#[into_params(names("id", "deliveryId"), parameter_in = Path)]
#[allow(dead_code)]
struct DeliveryPath(
    /// The webhook's id
    String,
    /// The delivery's id
    String,
);

/// Every event type, with its description, the JSON Schema of its messages and an example.
#[utoipa::path(get, path = "/api/partner/webhooks/event-types", tag = "webhooks",
    responses((status = 200, body = Catalogue)))]
async fn event_types(_partner: Partner) -> Result<Response, Problem> {
    Ok(warp::reply::json(&catalogue()).into_response())
}

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

/// Changes the event types an endpoint gets (checked as when creating it).
#[utoipa::path(patch, path = "/api/partner/webhooks/{id}", tag = "webhooks",
    params(WebhookId),
    request_body = UpdateEndpoint,
    responses((status = 200, body = Endpoint), BadRequest, NotFound, Unprocessable))]
async fn update(
    id: String,
    partner: Partner,
    store: Store,
    body: UpdateEndpoint,
) -> Result<Response, Problem> {
    let e = store.update_types(&owner(&partner), &id, body).await?;
    Ok(warp::reply::json(&e).into_response())
}

/// Queues a test event: the type's example message, signed and delivered as any other and
/// marked `test` in the log.
#[utoipa::path(post, path = "/api/partner/webhooks/{id}/test", tag = "webhooks",
    params(WebhookId),
    request_body = TestEvent,
    responses((status = 202, body = Delivery, description = "Queued"), BadRequest, NotFound))]
async fn test(
    id: String,
    partner: Partner,
    store: Store,
    body: TestEvent,
) -> Result<Response, Problem> {
    let d = store.send_test(&owner(&partner), &id, body).await?;
    Ok(warp::reply::with_status(warp::reply::json(&d), StatusCode::ACCEPTED).into_response())
}

/// One delivery with its payload and every attempt.
#[utoipa::path(get, path = "/api/partner/webhooks/{id}/deliveries/{deliveryId}", tag = "webhooks",
    params(DeliveryPath),
    responses((status = 200, body = DeliveryDetail), NotFound))]
async fn delivery(
    id: String,
    delivery_id: String,
    partner: Partner,
    store: Store,
) -> Result<Response, Problem> {
    let d = store.delivery(&owner(&partner), &id, &delivery_id).await?;
    Ok(warp::reply::json(&d).into_response())
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
    let deliveries = store.deliveries(&owner(&partner), &id, q.filter()).await?;
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
    paths(
        event_types,
        create,
        list,
        get,
        update,
        delete,
        rotate,
        enable,
        test,
        deliveries,
        delivery,
        replay
    ),
    components(schemas(DeliveryState, EventType))
)]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let store = || with(ctx.state.webhooks.clone());
    let partner = || ctx.auth.partner();
    any([
        // Before `get(id)`, whose `{id}` would take `event-types`.
        route!(event_types, partner()),
        route!(create, partner(), store(), body::json()),
        route!(list, partner(), store()),
        route!(get(id), partner(), store()),
        route!(update(id), partner(), store(), body::json()),
        route!(delete(id), partner(), store()),
        route!(rotate(id), partner(), store(), body::optional_json()),
        route!(enable(id), partner(), store()),
        route!(
            deliveries(id),
            warp::query::<DeliveriesQuery>(),
            partner(),
            store()
        ),
        route!(delivery(id, delivery_id), partner(), store()),
        route!(replay(id), partner(), store(), body::json()),
        route!(test(id), partner(), store(), body::json()),
    ])
}
