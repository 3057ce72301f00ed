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

/// A partner's webhooks as its routes and its portal pages change them: each change goes
/// through the store, then into the audit log (after the store committed it), here once.
pub struct Hooks<'a> {
    pub store: &'a Store,
    pub partner: &'a Partner,
}

impl Hooks<'_> {
    async fn audited(&self, action: Action, id: &str, details: serde_json::Value) {
        let actor = Actor::partner(self.partner);
        record_after(&self.store.pool, &actor, action, id, details).await;
    }

    fn owner(&self) -> String {
        owner(self.partner)
    }

    pub async fn create(&self, new: NewEndpoint) -> Result<EndpointWithSecret, StoreError> {
        let made = self.store.create(&self.owner(), new).await?;
        let details = serde_json::json!({
            "url": made.endpoint.url, "eventTypes": made.endpoint.event_types,
        });
        self.audited(Action::WebhookCreate, &made.endpoint.id, details)
            .await;
        Ok(made)
    }

    pub async fn update_types(
        &self,
        id: &str,
        update: UpdateEndpoint,
    ) -> Result<Endpoint, StoreError> {
        let e = self.store.update_types(&self.owner(), id, update).await?;
        let details = serde_json::json!({ "eventTypes": e.event_types });
        self.audited(Action::WebhookUpdate, id, details).await;
        Ok(e)
    }

    pub async fn send_test(&self, id: &str, test: TestEvent) -> Result<Delivery, StoreError> {
        let event_type = test.event_type;
        let d = self.store.send_test(&self.owner(), id, test).await?;
        let details = serde_json::json!({ "eventType": event_type, "deliveryId": d.id });
        self.audited(Action::WebhookTest, id, details).await;
        Ok(d)
    }

    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete(&self.owner(), id).await?;
        self.audited(Action::WebhookDelete, id, serde_json::json!({}))
            .await;
        Ok(())
    }

    pub async fn rotate(
        &self,
        id: &str,
        grace_seconds: u32,
    ) -> Result<EndpointWithSecret, StoreError> {
        let e = self.store.rotate(&self.owner(), id, grace_seconds).await?;
        let details = serde_json::json!({ "graceSeconds": grace_seconds });
        self.audited(Action::WebhookRotate, id, details).await;
        Ok(e)
    }

    pub async fn enable(&self, id: &str) -> Result<Endpoint, StoreError> {
        let e = self.store.enable(&self.owner(), id).await?;
        self.audited(Action::WebhookEnable, id, serde_json::json!({}))
            .await;
        Ok(e)
    }

    pub async fn replay(&self, id: &str, req: ReplayRequest) -> Result<Replayed, StoreError> {
        let request = serde_json::json!({
            "deliveryId": req.delivery_id, "from": req.from, "to": req.to,
        });
        let r = self.store.replay(&self.owner(), id, req).await?;
        let details = serde_json::json!({ "request": request, "queued": r.queued });
        self.audited(Action::WebhookReplay, id, details).await;
        Ok(r)
    }
}

fn hooks<'a>(store: &'a Store, partner: &'a Partner) -> Hooks<'a> {
    Hooks { store, partner }
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
    let made = hooks(&store, &partner).create(body).await?;
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
    let e = hooks(&store, &partner).update_types(&id, body).await?;
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
    let d = hooks(&store, &partner).send_test(&id, body).await?;
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
    hooks(&store, &partner).delete(&id).await?;
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
    let e = hooks(&store, &partner)
        .rotate(&id, body.grace_seconds)
        .await?;
    Ok(warp::reply::json(&e).into_response())
}

#[utoipa::path(post, path = "/api/partner/webhooks/{id}/enable", tag = "webhooks",
    params(WebhookId),
    responses((status = 200, body = Endpoint), NotFound))]
async fn enable(id: String, partner: Partner, store: Store) -> Result<Response, Problem> {
    let e = hooks(&store, &partner).enable(&id).await?;
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
    let r = hooks(&store, &partner).replay(&id, body).await?;
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
