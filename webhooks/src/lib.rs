//! Partner webhooks, to the Standard Webhooks spec.
//!
//! - [`subscriptions`]: subscriptions (URL, event types, retry schedule, a `whsec_` secret kept
//!   encrypted and rotated with overlap), the delivery log and replays;
//! - [`log`]: the delivery log (attempts, test sends, replays);
//! - [`outbox`]: the derived topics become deliveries queued in PostgreSQL, exactly once, on the
//!   runtime's projection worker;
//! - [`payloads`]: each event type's message as a type, and the catalogue of their schemas;
//! - [`dispatch`]: dispatchers claim due deliveries (`FOR UPDATE SKIP LOCKED`, with a lease so a
//!   dead dispatcher's work comes back), sign and POST them, and schedule retries;
//! - [`target`]: where a webhook may go (no loopback, private or link-local address unless
//!   allowed).

pub mod config;
pub mod dispatch;
pub mod log;
pub mod outbox;
pub mod payloads;
pub mod subscriptions;
pub mod target;

use std::sync::Arc;

use muster_runtime::migrate::Migrations;
use muster_runtime::projection::Batches;
use muster_runtime::{Env, Workers};
use serde::{Deserialize, Serialize};

pub use config::WebhooksConfig;

/// `muster webhooks`: the outbox, in batches of `outbox` (the projections' sizes), and the
/// dispatcher.
pub fn spawn(env: &Env, cfg: WebhooksConfig, outbox: Batches) -> Workers {
    let mut workers = Workers::default();
    let (e, c) = (env.clone(), cfg.clone());
    workers.spawn("webhook dispatcher", async move {
        dispatch::Dispatcher::new(c, e.pool.clone(), e.secrets.clone())?
            .run(e.health, e.shutdown)
            .await
    });
    let e = env.clone();
    workers.spawn("webhook outbox", async move {
        let projection = Arc::new(outbox::Outbox {
            attendance_every: chrono::Duration::from_std(cfg.attendance_every)?,
        });
        muster_runtime::projection::run(&e, vec![projection], outbox).await
    });
    workers
}

pub static MIGRATIONS: Migrations = Migrations {
    component: "webhooks",
    steps: &[
        "CREATE TABLE webhook_endpoints (
            endpoint_id text PRIMARY KEY,
            partner_id text NOT NULL,
            url text NOT NULL,
            event_types text[] NOT NULL,
            retry_schedule_secs int[],
            secret_enc bytea NOT NULL,
            previous_secret_enc bytea,
            previous_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz,
            disabled_at timestamptz,
            disabled_reason text,
            failing_since timestamptz);
         CREATE INDEX ON webhook_endpoints (partner_id);
         CREATE TABLE webhook_event_state (
            event_id text PRIMARY KEY,
            status text,
            last_attendance_at timestamptz);
         CREATE TABLE webhook_sequences (
            endpoint_id text NOT NULL,
            event_id text NOT NULL,
            last_seq bigint NOT NULL,
            PRIMARY KEY (endpoint_id, event_id));
         CREATE TABLE webhook_deliveries (
            delivery_id text PRIMARY KEY,
            message_id text NOT NULL,
            endpoint_id text NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
            event_id text NOT NULL,
            seq bigint NOT NULL,
            event_type text NOT NULL,
            occurred_at timestamptz NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            state text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
            attempts int NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            leased_until timestamptz,
            last_attempt_at timestamptz,
            last_status int,
            last_error text,
            last_latency_ms int,
            replay_of text);
         CREATE INDEX ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
         CREATE INDEX ON webhook_deliveries (endpoint_id, event_id, seq)
            WHERE state = 'pending' AND attempts = 0;
         CREATE INDEX ON webhook_deliveries (endpoint_id, occurred_at);
         CREATE TABLE webhook_attempts (
            delivery_id text NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
            attempt int NOT NULL,
            at timestamptz NOT NULL,
            status int,
            error text,
            latency_ms int NOT NULL,
            PRIMARY KEY (delivery_id, attempt))",
        // The claim walks due deliveries in (time, sequence) order and stops at its limit;
        // without this index it tested every due row's ordering before sorting them.
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq)
            WHERE state = 'pending'",
        // A test event sent from the portal, marked as such in the log.
        "ALTER TABLE webhook_deliveries ADD COLUMN test boolean NOT NULL DEFAULT false",
        // A message waits while an earlier one of its (endpoint, event) is pending, retries
        // included, so what a receiver answers 2xx to arrives in sequence order.
        "CREATE INDEX webhook_deliveries_pending_order
            ON webhook_deliveries (endpoint_id, event_id, seq) WHERE state = 'pending'",
    ],
};

/// The event types partners subscribe to (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "attendance.updated")]
    AttendanceUpdated,
    #[serde(rename = "alert.raised")]
    AlertRaised,
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    #[serde(rename = "event.status_changed")]
    StatusChanged,
    #[serde(rename = "service.health_changed")]
    HealthChanged,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        Self::AttendanceUpdated,
        Self::AlertRaised,
        Self::AlertResolved,
        Self::StatusChanged,
        Self::HealthChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AttendanceUpdated => "attendance.updated",
            Self::AlertRaised => "alert.raised",
            Self::AlertResolved => "alert.resolved",
            Self::StatusChanged => "event.status_changed",
            Self::HealthChanged => "service.health_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A message id (`webhook-id`): `msg_` and a v4 UUID, stable across a delivery's retries.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}
