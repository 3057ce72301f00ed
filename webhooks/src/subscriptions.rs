//! Subscriptions, their secrets, the delivery log and replays, in PostgreSQL. Secrets are
//! sealed with the platform key (`Secrets`) and shown only when made.

use chrono::{DateTime, Utc};
use muster_runtime::secrets::Secrets;
use muster_runtime::signature::generate_secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::EventType;
use crate::config::check_schedule;
use crate::target::Policy;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such webhook")]
    NotFound,
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("a stored secret does not open with this key: {0}")]
    Secret(String),
}

/// `POST /api/partner/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where deliveries are POSTed: http(s), a public address.
    pub url: String,
    /// Any of attendance.updated, alert.raised, alert.resolved, event.status_changed,
    /// service.health_changed.
    pub event_types: Vec<String>,
    /// Seconds before each attempt, the first normally 0; the default is Svix's schedule.
    pub retry_schedule: Option<Vec<u32>>,
}

/// A subscription as its partner sees it (never its secret, save when made or rotated).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub retry_schedule: Vec<u32>,
    pub created_at: DateTime<Utc>,
    /// Set when muster stopped delivering, with the reason; `POST …/enable` resumes.
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed, if they do.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret also signs (during a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
}

/// An endpoint with its secret: the answer to creating it or rotating its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_…`: shown this once.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    /// The `webhook-id` header: the same on every attempt and on replays.
    pub message_id: String,
    pub event_id: String,
    pub event_type: String,
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
    /// pending, delivered, failed or cancelled.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub replay_of: Option<String>,
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

/// What the API needs to manage subscriptions.
#[derive(Clone)]
pub struct Store {
    pub pool: deadpool_postgres::Pool,
    pub secrets: Secrets,
    pub policy: Policy,
    pub default_schedule: Vec<u32>,
    /// `webhooks.max_endpoints_per_partner`.
    pub max_endpoints: i64,
    /// `webhooks.max_replay`.
    pub max_replay: i64,
}

impl Store {
    /// The store the API's webhook routes use, with the limits of `[webhooks]`.
    pub fn new(
        cfg: &crate::WebhooksConfig,
        pool: deadpool_postgres::Pool,
        secrets: Secrets,
    ) -> Result<Self, String> {
        Ok(Self {
            pool,
            secrets,
            policy: Policy::new(cfg.networks()?),
            default_schedule: cfg.retry_schedule_secs.clone(),
            max_endpoints: cfg.max_endpoints_per_partner as i64,
            max_replay: cfg.max_replay as i64,
        })
    }
}

const ENDPOINT_COLUMNS: &str = "endpoint_id, url, event_types, retry_schedule_secs, created_at,
    disabled_at, disabled_reason, failing_since,
    CASE WHEN previous_until > now() THEN previous_until END";

impl Store {
    fn endpoint(&self, r: &tokio_postgres::Row) -> Endpoint {
        let schedule: Option<Vec<i32>> = r.get(3);
        Endpoint {
            id: r.get(0),
            url: r.get(1),
            event_types: r.get(2),
            retry_schedule: schedule.map_or_else(
                || self.default_schedule.clone(),
                |s| s.into_iter().map(|x| x.max(0) as u32).collect(),
            ),
            created_at: r.get(4),
            disabled_at: r.get(5),
            disabled_reason: r.get(6),
            failing_since: r.get(7),
            previous_secret_until: r.get(8),
        }
    }

    pub async fn create(
        &self,
        partner_id: &str,
        new: NewEndpoint,
    ) -> Result<EndpointWithSecret, StoreError> {
        let url = self
            .policy
            .check_resolved(&new.url)
            .await
            .map_err(|e| StoreError::Invalid(format!("url: {e}")))?;
        if new.event_types.is_empty() {
            return Err(StoreError::Invalid(
                "eventTypes must name at least one".into(),
            ));
        }
        for t in &new.event_types {
            if EventType::parse(t).is_none() {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                return Err(StoreError::Invalid(format!(
                    "eventTypes: {t:?} is not one of {}",
                    known.join(", ")
                )));
            }
        }
        let mut types = new.event_types.clone();
        types.sort();
        types.dedup();
        if let Some(s) = &new.retry_schedule {
            check_schedule(s).map_err(|e| StoreError::Invalid(format!("retrySchedule: {e}")))?;
        }
        let schedule: Option<Vec<i32>> = new
            .retry_schedule
            .map(|s| s.into_iter().map(|x| x as i32).collect());
        let secret = generate_secret();
        let id = format!("ep_{}", uuid::Uuid::new_v4().simple());
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The partner's row lock makes count-then-insert atomic against concurrent creates.
        tx.execute(
            "SELECT 1 FROM partners WHERE partner_id = $1 FOR UPDATE",
            &[&partner_id],
        )
        .await?;
        let existing: i64 = tx
            .query_one(
                "SELECT count(*) FROM webhook_endpoints WHERE partner_id = $1",
                &[&partner_id],
            )
            .await?
            .get(0);
        if existing >= self.max_endpoints {
            return Err(StoreError::Invalid(format!(
                "a partner may have at most {} webhooks; delete one first",
                self.max_endpoints
            )));
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, event_types,
                        retry_schedule_secs, secret_enc)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[
                    &id,
                    &partner_id,
                    &url.as_str(),
                    &types,
                    &schedule,
                    &self.secrets.encrypt(secret.as_bytes()),
                ],
            )
            .await?;
        tx.commit().await?;
        tracing::info!(endpoint = %id, partner = partner_id, url = %url, "webhook created");
        Ok(EndpointWithSecret {
            endpoint: self.endpoint(&row),
            secret,
        })
    }

    pub async fn list(&self, partner_id: &str) -> Result<Vec<Endpoint>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
                     WHERE partner_id = $1 AND deleted_at IS NULL ORDER BY created_at"
                ),
                &[&partner_id],
            )
            .await?;
        Ok(rows.iter().map(|r| self.endpoint(r)).collect())
    }

    pub async fn get(&self, partner_id: &str, id: &str) -> Result<Endpoint, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
                     WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL"
                ),
                &[&partner_id, &id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(self.endpoint(&row))
    }

    /// Deletes a subscription; its pending deliveries are cancelled, its log kept.
    pub async fn delete(&self, partner_id: &str, id: &str) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE webhook_endpoints SET deleted_at = now()
                 WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL",
                &[&partner_id, &id],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at = NULL
             WHERE endpoint_id = $1 AND state = 'pending'",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(endpoint = id, partner = partner_id, "webhook deleted");
        Ok(())
    }

    /// A new secret; the previous one keeps signing (as a second signature) for `grace`.
    pub async fn rotate(
        &self,
        partner_id: &str,
        id: &str,
        grace_secs: u32,
    ) -> Result<EndpointWithSecret, StoreError> {
        let secret = generate_secret();
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhook_endpoints SET previous_secret_enc = secret_enc,
                        previous_until = now() + make_interval(secs => $3), secret_enc = $4
                     WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL
                     RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[
                    &partner_id,
                    &id,
                    &(grace_secs as f64),
                    &self.secrets.encrypt(secret.as_bytes()),
                ],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        tracing::info!(endpoint = id, grace_secs, "webhook secret rotated");
        Ok(EndpointWithSecret {
            endpoint: self.endpoint(&row),
            secret,
        })
    }

    /// Resumes a disabled endpoint; deliveries that failed while it was disabled can be
    /// replayed.
    pub async fn enable(&self, partner_id: &str, id: &str) -> Result<Endpoint, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL,
                        failing_since = NULL
                     WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL
                     RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[&partner_id, &id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(self.endpoint(&row))
    }

    /// The newest deliveries first, optionally of one state.
    pub async fn deliveries(
        &self,
        partner_id: &str,
        id: &str,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.get(partner_id, id).await?;
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT delivery_id, message_id, event_id, event_type, seq, occurred_at, state,
                        attempts, next_attempt_at, last_attempt_at, last_status, last_error,
                        last_latency_ms, replay_of
                 FROM webhook_deliveries
                 WHERE endpoint_id = $1 AND ($2::text IS NULL OR state = $2)
                 ORDER BY created_at DESC, occurred_at DESC, seq DESC LIMIT $3",
                &[&id, &state, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Delivery {
                id: r.get(0),
                message_id: r.get(1),
                event_id: r.get(2),
                event_type: r.get(3),
                sequence: r.get(4),
                occurred_at: r.get(5),
                state: r.get(6),
                attempts: r.get(7),
                next_attempt_at: r.get(8),
                last_attempt_at: r.get(9),
                last_status: r.get(10),
                last_error: r.get(11),
                last_latency_ms: r.get(12),
                replay_of: r.get(13),
            })
            .collect())
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
                           occurred_at, payload
                    FROM webhook_deliveries
                    WHERE endpoint_id = $1 AND replay_of IS NULL
                      AND (($2::text IS NOT NULL AND delivery_id = $2)
                        OR ($2::text IS NULL AND occurred_at >= $3 AND occurred_at < $4))
                    LIMIT $5::bigint + 1),
                 queued AS (
                    INSERT INTO webhook_deliveries (delivery_id, message_id, endpoint_id,
                        event_id, seq, event_type, occurred_at, payload, state, next_attempt_at,
                        replay_of)
                    SELECT 'dlv_' || md5(random()::text || clock_timestamp()::text || delivery_id),
                           message_id, endpoint_id, event_id, seq, event_type, occurred_at,
                           payload, 'pending', now(), delivery_id
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

    /// How many deliveries each of a partner's live endpoints has in each state, for the
    /// admin's view of a partner: (endpoint id, state, count).
    pub async fn delivery_counts(
        &self,
        partner_id: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT d.endpoint_id, d.state, count(*) AS n
                 FROM webhook_deliveries d JOIN webhook_endpoints e USING (endpoint_id)
                 WHERE e.partner_id = $1 AND e.deleted_at IS NULL
                 GROUP BY d.endpoint_id, d.state ORDER BY d.endpoint_id, d.state",
                &[&partner_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}
