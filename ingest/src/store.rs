//! The registered services, kept in PostgreSQL so that `muster ingest` resumes them on start.

use anyhow::Context;
use muster_runtime::migrate::Migrations;

use crate::service::EventServiceConfig;

/// Ingest owns `services`; the API reads it as the event catalogue.
pub static MIGRATIONS: Migrations = Migrations {
    component: "ingest",
    steps: &["CREATE TABLE services (
            event_id text PRIMARY KEY,
            service_name text NOT NULL,
            config jsonb NOT NULL,
            name text NOT NULL,
            event_type text NOT NULL,
            capacity bigint,
            starts_at timestamptz,
            ends_at timestamptz,
            registered_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now())"],
};

/// Registers or updates a service (re-registering updates in place).
pub async fn upsert(
    client: &impl tokio_postgres::GenericClient,
    svc: &EventServiceConfig,
) -> anyhow::Result<()> {
    let config = serde_json::to_value(svc)?;
    client
        .execute(
            "INSERT INTO services (event_id, service_name, config, name, event_type, capacity, starts_at, ends_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (event_id) DO UPDATE SET
               service_name = excluded.service_name, config = excluded.config, name = excluded.name,
               event_type = excluded.event_type, capacity = excluded.capacity,
               starts_at = excluded.starts_at, ends_at = excluded.ends_at, updated_at = now()",
            &[
                &svc.event_id,
                &svc.service_name,
                &config,
                &svc.event.name,
                &svc.event.event_type,
                &svc.event.capacity,
                &svc.event.starts_at,
                &svc.event.ends_at,
            ],
        )
        .await
        .with_context(|| format!("saving service {}", svc.event_id))?;
    Ok(())
}

/// Every registered service. A row whose config no longer parses is reported and skipped rather
/// than stopping every other service.
pub async fn load_all(
    client: &impl tokio_postgres::GenericClient,
) -> anyhow::Result<Vec<EventServiceConfig>> {
    let rows = client
        .query(
            "SELECT event_id, config FROM services ORDER BY event_id",
            &[],
        )
        .await
        .context("reading registered services")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get(0);
        match serde_json::from_value::<EventServiceConfig>(row.get(1)) {
            Ok(svc) => out.push(svc),
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "stored service config does not parse; skipped")
            }
        }
    }
    Ok(out)
}
