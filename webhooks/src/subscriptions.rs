//! Subscriptions and their secrets, in PostgreSQL (their delivery log is [`crate::log`]'s). Secrets are
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
    #[error("the log holds an unknown {0}")]
    Stored(String),
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

/// `PATCH /api/partner/webhooks/{id}`: the event types to deliver from now on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// As when creating: at least one, each a known type.
    pub event_types: Vec<String>,
}

/// `event_types` checked (at least one, each known), sorted and without repeats: creating and
/// changing an endpoint refuse the same lists with the same messages.
pub fn check_types(event_types: &[String]) -> Result<Vec<String>, StoreError> {
    if event_types.is_empty() {
        return Err(StoreError::Invalid(
            "eventTypes must name at least one".into(),
        ));
    }
    for t in event_types {
        if EventType::parse(t).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(StoreError::Invalid(format!(
                "eventTypes: {t:?} is not one of {}",
                known.join(", ")
            )));
        }
    }
    let mut types = event_types.to_vec();
    types.sort();
    types.dedup();
    Ok(types)
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
        let types = check_types(&new.event_types)?;
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

    /// Changes which event types an endpoint gets; deliveries already queued still go.
    pub async fn update_types(
        &self,
        partner_id: &str,
        id: &str,
        update: UpdateEndpoint,
    ) -> Result<Endpoint, StoreError> {
        let types = check_types(&update.event_types)?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE webhook_endpoints SET event_types = $3
                     WHERE partner_id = $1 AND endpoint_id = $2 AND deleted_at IS NULL
                     RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[&partner_id, &id, &types],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        tracing::info!(endpoint = id, ?types, "webhook event types changed");
        Ok(self.endpoint(&row))
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
