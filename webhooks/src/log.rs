//! The delivery log: each endpoint's messages with their attempts, test sends, and replays.
//! The JSON routes and the portal's pages both read and write it through these methods.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::EventType;
use crate::payloads::{Data, Message};
use crate::subscriptions::{Store, StoreError};

/// A delivery's state in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
    Cancelled,
}

muster_schemas::text_values!(DeliveryState {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
    Cancelled => "cancelled",
});

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    /// The `webhook-id` header: the same on every attempt and on replays.
    pub message_id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub replay_of: Option<String>,
    /// A test event sent by the partner (`POST …/{id}/test`), not something that happened.
    pub test: bool,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, absent when it did not answer.
    pub status: Option<i32>,
    /// Why there was no answer (connection refused, timeout, refused target).
    pub error: Option<String>,
    pub latency_ms: i32,
}

/// One message of the log with its payload and every attempt, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The message body as sent (each attempt is signed afresh).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub attempt_log: Vec<Attempt>,
}

/// Which deliveries a log shows, newest first.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub event_type: Option<EventType>,
    pub limit: i64,
}

/// `POST …/{id}/test`: which event type's example to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestEvent {
    pub event_type: EventType,
}

/// `POST …/{id}/replay`: one delivery, or every delivery that occurred in a window.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    pub delivery_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    /// New deliveries queued, each re-signed with the current secret when sent.
    pub queued: i64,
}

const DELIVERY_COLUMNS: &str = "delivery_id, message_id, event_id, event_type, seq, occurred_at,
    state, attempts, next_attempt_at, last_attempt_at, last_status, last_error, last_latency_ms,
    replay_of, test";

fn delivery(r: &tokio_postgres::Row) -> Result<Delivery, StoreError> {
    let text: String = r.get(3);
    let event_type = EventType::parse(&text)
        .ok_or_else(|| StoreError::Stored(format!("event type {text:?}")))?;
    let state: String = r.get(6);
    Ok(Delivery {
        id: r.get(0),
        message_id: r.get(1),
        event_id: r.get(2),
        event_type,
        sequence: r.get(4),
        occurred_at: r.get(5),
        state: state.parse().map_err(StoreError::Stored)?,
        attempts: r.get(7),
        next_attempt_at: r.get(8),
        last_attempt_at: r.get(9),
        last_status: r.get(10),
        last_error: r.get(11),
        last_latency_ms: r.get(12),
        replay_of: r.get(13),
        test: r.get(14),
    })
}

impl Store {
    /// The log's rows with their payloads: one delivery (`only`) or those `filter` keeps,
    /// newest first. Every read of the log is this query.
    async fn select(
        &self,
        id: &str,
        filter: DeliveryFilter,
        only: Option<&str>,
    ) -> Result<Vec<(Delivery, Value)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS}, payload FROM webhook_deliveries
                     WHERE endpoint_id = $1 AND ($2::text IS NULL OR state = $2)
                       AND ($3::text IS NULL OR event_type = $3)
                       AND ($5::text IS NULL OR delivery_id = $5)
                     ORDER BY created_at DESC, occurred_at DESC, seq DESC LIMIT $4"
                ),
                &[
                    &id,
                    &filter.state.map(DeliveryState::as_str),
                    &filter.event_type.map(EventType::as_str),
                    &filter.limit,
                    &only,
                ],
            )
            .await?;
        rows.iter().map(|r| Ok((delivery(r)?, r.get(15)))).collect()
    }

    /// `rows` with their attempts, oldest first.
    async fn with_attempts(
        &self,
        rows: Vec<(Delivery, Value)>,
    ) -> Result<Vec<DeliveryDetail>, StoreError> {
        let ids: Vec<&str> = rows.iter().map(|(d, _)| d.id.as_str()).collect();
        let client = self.pool.get().await?;
        let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
        for a in client
            .query(
                "SELECT delivery_id, attempt, at, status, error, latency_ms FROM webhook_attempts
                 WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
                &[&ids],
            )
            .await?
        {
            attempts.entry(a.get(0)).or_default().push(Attempt {
                attempt: a.get(1),
                at: a.get(2),
                status: a.get(3),
                error: a.get(4),
                latency_ms: a.get(5),
            });
        }
        Ok(rows
            .into_iter()
            .map(|(delivery, payload)| DeliveryDetail {
                attempt_log: attempts.remove(&delivery.id).unwrap_or_default(),
                delivery,
                payload,
            })
            .collect())
    }

    /// The newest deliveries first, of one state and one event type when asked.
    pub async fn deliveries(
        &self,
        partner_id: &str,
        id: &str,
        filter: DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.get(partner_id, id).await?;
        let rows = self.select(id, filter, None).await?;
        Ok(rows.into_iter().map(|(d, _)| d).collect())
    }

    /// As [`Store::deliveries`], each with its payload and attempts (the portal's log).
    pub async fn log(
        &self,
        partner_id: &str,
        id: &str,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryDetail>, StoreError> {
        self.get(partner_id, id).await?;
        let rows = self.select(id, filter, None).await?;
        self.with_attempts(rows).await
    }

    /// One delivery of an endpoint with its payload and attempts.
    pub async fn delivery(
        &self,
        partner_id: &str,
        id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryDetail, StoreError> {
        self.get(partner_id, id).await?;
        let any = DeliveryFilter {
            state: None,
            event_type: None,
            limit: 1,
        };
        let rows = self.select(id, any, Some(delivery_id)).await?;
        self.with_attempts(rows)
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }

    /// Queues a test event: `event_type`'s example message, stamped now, delivered and signed
    /// like any other and marked as a test in the log.
    pub async fn send_test(
        &self,
        partner_id: &str,
        id: &str,
        test: TestEvent,
    ) -> Result<Delivery, StoreError> {
        self.get(partner_id, id).await?;
        let data = Data::example(test.event_type);
        let now = Utc::now();
        let payload = Message {
            kind: test.event_type,
            timestamp: now,
            data: &data,
        }
        .to_json();
        let message_id = crate::new_message_id();
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO webhook_deliveries (delivery_id, message_id, endpoint_id,
                        event_id, seq, event_type, occurred_at, payload, state, next_attempt_at,
                        test)
                     VALUES ($1, $1, $2, $3, 1, $4, $5, $6, 'pending', now(), true)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[
                    &message_id,
                    &id,
                    &data.event_id(),
                    &test.event_type.as_str(),
                    &now,
                    &payload,
                ],
            )
            .await?;
        tracing::info!(
            endpoint = id,
            event_type = test.event_type.as_str(),
            "webhook test queued"
        );
        delivery(&row)
    }

    /// Queues again one delivery, or those that occurred in `[from, to)`, as new deliveries
    /// with the same message ids and payloads (signed afresh when sent).
    pub async fn replay(
        &self,
        partner_id: &str,
        id: &str,
        req: ReplayRequest,
    ) -> Result<Replayed, StoreError> {
        self.get(partner_id, id).await?;
        let (from, to) = match (&req.delivery_id, req.from, req.to) {
            (Some(_), None, None) => (None, None),
            (None, Some(f), t) => {
                let t = t.unwrap_or_else(Utc::now);
                if f >= t {
                    return Err(StoreError::Invalid("from must be before to".into()));
                }
                (Some(f), Some(t))
            }
            _ => {
                return Err(StoreError::Invalid(
                    "give either deliveryId, or from (and optionally to)".into(),
                ));
            }
        };
        let client = self.pool.get().await?;
        // One statement: the window is counted (up to one past the cap) and queued only when
        // within the cap, so a refused replay queues nothing.
        let row = client
            .query_one(
                "WITH picked AS (
                    SELECT delivery_id, message_id, endpoint_id, event_id, seq, event_type,
                           occurred_at, payload, test
                    FROM webhook_deliveries
                    WHERE endpoint_id = $1 AND replay_of IS NULL
                      AND (($2::text IS NOT NULL AND delivery_id = $2)
                        OR ($2::text IS NULL AND occurred_at >= $3 AND occurred_at < $4))
                    LIMIT $5::bigint + 1),
                 queued AS (
                    INSERT INTO webhook_deliveries (delivery_id, message_id, endpoint_id,
                        event_id, seq, event_type, occurred_at, payload, state, next_attempt_at,
                        replay_of, test)
                    SELECT 'dlv_' || md5(random()::text || clock_timestamp()::text || delivery_id),
                           message_id, endpoint_id, event_id, seq, event_type, occurred_at,
                           payload, 'pending', now(), delivery_id, test
                    FROM picked
                    WHERE (SELECT count(*) FROM picked) <= $5::bigint
                    RETURNING 1)
                 SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM queued)",
                &[&id, &req.delivery_id, &from, &to, &self.max_replay],
            )
            .await?;
        let (picked, queued): (i64, i64) = (row.get(0), row.get(1));
        if picked > self.max_replay {
            return Err(StoreError::Invalid(format!(
                "the window holds more than {} deliveries, the most one replay may queue; \
                 replay shorter windows",
                self.max_replay
            )));
        }
        if req.delivery_id.is_some() && queued == 0 {
            return Err(StoreError::NotFound);
        }
        tracing::info!(endpoint = id, queued, "webhook deliveries replayed");
        Ok(Replayed { queued })
    }
}
