//! Registered services in PostgreSQL: their configuration (credentials encrypted with the
//! platform secret), their status, and the leases that share them between ingest processes.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use muster_runtime::migrate::Migrations;
use muster_runtime::pg::unflushed;
use muster_runtime::secrets::Secrets;
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::auth::Authentication;
use crate::service::EventServiceConfig;

/// Ingest owns these tables; the API reads `services` as the event catalogue.
pub static MIGRATIONS: Migrations = Migrations {
    component: "ingest",
    steps: &[
        "CREATE TABLE services (
            event_id text PRIMARY KEY,
            service_name text NOT NULL,
            config jsonb NOT NULL,
            secrets bytea NOT NULL,
            name text NOT NULL,
            event_type text NOT NULL,
            capacity bigint,
            starts_at timestamptz,
            ends_at timestamptz,
            registered_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            lease_owner text,
            lease_expires_at timestamptz);
        CREATE TABLE service_status (
            event_id text PRIMARY KEY REFERENCES services ON DELETE CASCADE,
            health text,
            health_reason text,
            health_since timestamptz,
            consecutive_failures int NOT NULL DEFAULT 0,
            last_attempt_at timestamptz,
            last_success_at timestamptz,
            last_error text,
            last_latency_ms bigint);
        CREATE TABLE ingest_members (
            member_id text PRIMARY KEY,
            heartbeat_at timestamptz NOT NULL);
        CREATE TABLE checkin_deliveries (
            event_id text NOT NULL,
            delivery_id text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (event_id, delivery_id));",
        // Claimed, then published: rows from before were published in the same transaction.
        "ALTER TABLE checkin_deliveries ADD COLUMN published boolean NOT NULL DEFAULT true;",
    ],
};

/// What is encrypted at rest.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SealedSecrets {
    authentication: Authentication,
    webhook_secret: String,
}

/// A registered service as ingest needs it.
#[derive(Clone, PartialEq)]
pub struct StoredService {
    pub config: EventServiceConfig,
    /// The secret the service signs its pushed check-ins with.
    pub webhook_secret: String,
}

impl std::fmt::Debug for StoredService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub struct Saved {
    pub created: bool,
    pub webhook_secret: String,
}

/// Registers or updates a service. A new service gets a new webhook secret; an update keeps
/// the existing one, so the service's signing does not break.
pub async fn upsert(
    client: &impl GenericClient,
    secrets: &Secrets,
    svc: &EventServiceConfig,
) -> anyhow::Result<Saved> {
    let existing = load(client, secrets, &svc.event_id).await?;
    let created = existing.is_none();
    let webhook_secret = existing
        .map(|s| s.webhook_secret)
        .unwrap_or_else(muster_runtime::signature::generate_secret);
    let sealed = secrets.encrypt(&serde_json::to_vec(&SealedSecrets {
        authentication: svc.authentication.clone(),
        webhook_secret: webhook_secret.clone(),
    })?);
    let mut public = svc.clone();
    public.authentication = Authentication::None;
    let config = serde_json::to_value(&public)?;
    client
        .execute(
            "INSERT INTO services (event_id, service_name, config, secrets, name, event_type,
                capacity, starts_at, ends_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (event_id) DO UPDATE SET
               service_name = excluded.service_name, config = excluded.config,
               secrets = excluded.secrets, name = excluded.name,
               event_type = excluded.event_type, capacity = excluded.capacity,
               starts_at = excluded.starts_at, ends_at = excluded.ends_at, updated_at = now()",
            &[
                &svc.event_id,
                &svc.service_name,
                &config,
                &sealed,
                &svc.event.name,
                &svc.event.event_type,
                &svc.event.capacity,
                &svc.event.starts_at,
                &svc.event.ends_at,
            ],
        )
        .await
        .with_context(|| format!("saving service {}", svc.event_id))?;
    client
        .execute(
            "INSERT INTO service_status (event_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&svc.event_id],
        )
        .await?;
    Ok(Saved {
        created,
        webhook_secret,
    })
}

fn unseal(
    secrets: &Secrets,
    event_id: &str,
    config: serde_json::Value,
    sealed: &[u8],
) -> anyhow::Result<StoredService> {
    let mut config: EventServiceConfig = serde_json::from_value(config)
        .with_context(|| format!("stored config of {event_id} does not parse"))?;
    let s: SealedSecrets = serde_json::from_slice(
        &secrets
            .decrypt(sealed)
            .with_context(|| format!("credentials of {event_id}"))?,
    )?;
    config.authentication = s.authentication;
    Ok(StoredService {
        config,
        webhook_secret: s.webhook_secret,
    })
}

pub async fn load(
    client: &impl GenericClient,
    secrets: &Secrets,
    event_id: &str,
) -> anyhow::Result<Option<StoredService>> {
    let row = client
        .query_opt(
            "SELECT config, secrets FROM services WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .context("reading a registered service")?;
    row.map(|r| unseal(secrets, event_id, r.get(0), r.get(1)))
        .transpose()
}

pub async fn delete(client: &impl GenericClient, event_id: &str) -> anyhow::Result<bool> {
    Ok(client
        .execute("DELETE FROM services WHERE event_id = $1", &[&event_id])
        .await
        .context("removing a service")?
        == 1)
}

/// A service as the admin API lists it: configuration without credentials, plus status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    #[serde(flatten)]
    pub config: serde_json::Value,
    pub authentication_type: String,
    pub registered_at: DateTime<Utc>,
    pub status: StatusView,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub health: Option<String>,
    pub health_reason: Option<String>,
    pub health_since: Option<DateTime<Utc>>,
    pub consecutive_failures: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    /// Seconds since the last successful collection.
    pub lag_seconds: Option<f64>,
    /// The ingest process polling it now, if any.
    pub polled_by: Option<String>,
}

pub async fn list(
    client: &impl GenericClient,
    secrets: &Secrets,
    event_id: Option<&str>,
) -> anyhow::Result<Vec<ServiceView>> {
    let rows = client
        .query(
            "SELECT s.event_id, s.config, s.secrets, s.registered_at, st.health, st.health_reason,
                    st.health_since, coalesce(st.consecutive_failures, 0), st.last_attempt_at,
                    st.last_success_at, st.last_error, st.last_latency_ms,
                    extract(epoch FROM now() - st.last_success_at)::float8,
                    CASE WHEN s.lease_expires_at > now() THEN s.lease_owner END
             FROM services s LEFT JOIN service_status st USING (event_id)
             WHERE $1::text IS NULL OR s.event_id = $1
             ORDER BY s.event_id",
            &[&event_id],
        )
        .await
        .context("listing services")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let stored = unseal(secrets, &id, r.get(1), r.get(2))?;
        let mut config = serde_json::to_value(&stored.config)?;
        if let Some(obj) = config.as_object_mut() {
            obj.remove("authentication");
        }
        out.push(ServiceView {
            config,
            authentication_type: stored.config.authentication.kind().to_owned(),
            registered_at: r.get(3),
            status: StatusView {
                health: r.get(4),
                health_reason: r.get(5),
                health_since: r.get(6),
                consecutive_failures: r.get(7),
                last_attempt_at: r.get(8),
                last_success_at: r.get(9),
                last_error: r.get(10),
                last_latency_ms: r.get(11),
                lag_seconds: r.get(12),
                polled_by: r.get(13),
            },
        });
    }
    Ok(out)
}

/// A leased service with when it was last collected, so a new owner keeps the old rhythm.
#[derive(Debug, Clone)]
pub struct Lease {
    pub service: StoredService,
    pub last_attempt_at: Option<DateTime<Utc>>,
}

/// What a lease refresh leaves `member` with.
#[derive(Debug, Default)]
pub struct Leases {
    /// The services to collect.
    pub keep: Vec<Lease>,
    /// Held, but past the fair share: to stop collecting, then [`release`], so that whoever
    /// claims one next sees its last collection (a release before the task stops could let
    /// both processes collect at once).
    pub hand_back: Vec<String>,
}

/// Heartbeats `member`, renews its leases, claims free or expired services up to its fair share
/// and says which of its services exceed that share.
pub async fn renew_and_claim(
    client: &mut tokio_postgres::Client,
    secrets: &Secrets,
    member: &str,
    ttl: Duration,
) -> anyhow::Result<Leases> {
    let ttl_secs = ttl.as_secs_f64();
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO ingest_members (member_id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (member_id) DO UPDATE SET heartbeat_at = now()",
        &[&member],
    )
    .await?;
    let live: i64 = tx
        .query_one(
            "SELECT count(*) FROM ingest_members
             WHERE heartbeat_at > now() - make_interval(secs => $1)",
            &[&ttl_secs],
        )
        .await?
        .get(0);
    let total: i64 = tx
        .query_one("SELECT count(*) FROM services", &[])
        .await?
        .get(0);
    let share = (total + live.max(1) - 1) / live.max(1);
    tx.execute(
        "UPDATE services SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE lease_owner = $1",
        &[&member, &ttl_secs],
    )
    .await?;
    // What exceeds the fair share goes back (after its task stops), so a process that joins
    // gets work.
    let hand_back: Vec<String> = tx
        .query(
            "SELECT event_id FROM services WHERE lease_owner = $1
             ORDER BY event_id DESC OFFSET $2",
            &[&member, &share],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute(
        "UPDATE services SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
         WHERE event_id IN (
            SELECT event_id FROM services
            WHERE lease_owner IS NULL OR lease_expires_at < now()
            ORDER BY event_id
            LIMIT greatest($3 - (SELECT count(*) FROM services WHERE lease_owner = $1), 0)
            FOR UPDATE SKIP LOCKED)",
        &[&member, &ttl_secs, &share],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT s.event_id, s.config, s.secrets, st.last_attempt_at
             FROM services s LEFT JOIN service_status st USING (event_id)
             WHERE s.lease_owner = $1 ORDER BY s.event_id",
            &[&member],
        )
        .await?;
    tx.execute(
        "DELETE FROM ingest_members WHERE heartbeat_at < now() - interval '1 hour'",
        &[],
    )
    .await?;
    tx.commit().await.context("committing leases")?;
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        if hand_back.contains(&id) {
            continue;
        }
        match unseal(secrets, &id, r.get(1), r.get(2)) {
            Ok(service) => keep.push(Lease {
                service,
                last_attempt_at: r.get(3),
            }),
            Err(e) => {
                tracing::error!(event_id = %id, error = %format!("{e:#}"), "stored service unreadable; skipped")
            }
        }
    }
    Ok(Leases { keep, hand_back })
}

/// Gives up `member`'s leases of `event_ids`, once their tasks have stopped.
pub async fn release(
    client: &impl GenericClient,
    member: &str,
    event_ids: &[String],
) -> anyhow::Result<()> {
    client
        .execute(
            "UPDATE services SET lease_owner = NULL, lease_expires_at = NULL
             WHERE lease_owner = $1 AND event_id = ANY($2)",
            &[&member, &event_ids],
        )
        .await
        .context("releasing leases")?;
    Ok(())
}

/// Gives up every lease of `member` (on shutdown), so others take over at once.
pub async fn release_all(client: &impl GenericClient, member: &str) -> anyhow::Result<()> {
    client
        .execute(
            "UPDATE services SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1",
            &[&member],
        )
        .await?;
    client
        .execute(
            "DELETE FROM ingest_members WHERE member_id = $1",
            &[&member],
        )
        .await?;
    Ok(())
}

/// Marks the start of a collection, before anything is fetched, so that a process taking the
/// lease over knows a collection of this interval may already be under way.
/// Committed without waiting for a WAL flush (see [`unflushed`]): other processes see it at
/// once, and one a PostgreSQL crash loses only lets a takeover collect once more.
pub async fn start_attempt(
    client: &deadpool_postgres::Client,
    event_id: &str,
) -> anyhow::Result<()> {
    unflushed(
        client,
        "UPDATE service_status SET last_attempt_at = now() WHERE event_id = $1",
        &[&event_id],
    )
    .await?;
    Ok(())
}

/// Records how a collection ended, committed without waiting for a WAL flush (see
/// [`unflushed`]): one a PostgreSQL crash loses is written again by the next collection.
pub async fn finish_attempt(
    client: &deadpool_postgres::Client,
    event_id: &str,
    ok: bool,
    latency_ms: Option<i64>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    unflushed(
        client,
        "UPDATE service_status SET
            last_success_at = CASE WHEN $2 THEN now() ELSE last_success_at END,
            last_latency_ms = coalesce($3, last_latency_ms),
            last_error = CASE WHEN $2 THEN last_error ELSE $4 END
         WHERE event_id = $1",
        &[&event_id, &ok, &latency_ms, &error],
    )
    .await?;
    Ok(())
}

pub async fn record_health(
    client: &impl GenericClient,
    event_id: &str,
    health: &str,
    reason: &str,
    consecutive_failures: i32,
) -> anyhow::Result<()> {
    client
        .execute(
            "UPDATE service_status SET health = $2, health_reason = $3, health_since = now(),
                consecutive_failures = $4
             WHERE event_id = $1",
            &[&event_id, &health, &reason, &consecutive_failures],
        )
        .await?;
    Ok(())
}
