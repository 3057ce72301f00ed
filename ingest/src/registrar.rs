//! Registration of a service, in the order the seed gives: validate the connection, save the
//! configuration, take an initial snapshot. The ingest processes pick the service up at their
//! next lease refresh and start its schedule and health monitoring.

use muster_runtime::secrets::Secrets;
use muster_schemas::SnapshotSource;
use muster_schemas::records::now_millis;

use crate::collector::Collector;
use crate::service::EventServiceConfig;
use crate::service_health::{Observation, clean_reason};
use crate::service_table::{self, ServiceView};

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error("the service failed its health check: {0}")]
    Unhealthy(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The outcome of a registration.
#[derive(Debug)]
pub struct Registered {
    pub created: bool,
    /// The secret the service must sign pushed check-ins with; only shown when created.
    pub webhook_secret: Option<String>,
    /// `Err` with the reason when the initial snapshot could not be taken; the service stays
    /// registered and its schedule retries.
    pub initial_sync: Result<(), String>,
    pub service: ServiceView,
}

#[derive(Clone)]
pub struct Registrar {
    pub collector: Collector,
    pub pool: deadpool_postgres::Pool,
    pub secrets: Secrets,
}

impl Registrar {
    async fn client(&self) -> anyhow::Result<deadpool_postgres::Object> {
        use anyhow::Context;
        self.pool.get().await.context("connecting to PostgreSQL")
    }

    pub async fn register(&self, svc: EventServiceConfig) -> Result<Registered, RegisterError> {
        svc.validate().map_err(RegisterError::Invalid)?;
        if let Observation::Failed { reason, .. } = self.collector.check_health(&svc).await {
            return Err(RegisterError::Unhealthy(clean_reason(&reason)));
        }
        // A connection is taken for each step and given back before Kafka or the upstream
        // service is waited on: a slow broker must not drain the pool.
        let saved = service_table::upsert(&**self.client().await?, &self.secrets, &svc).await?;
        // Re-registering republishes, so a failure here is repaired by registering again.
        self.collector
            .publish(&svc.catalogue_entry(now_millis()))
            .await
            .map_err(|e| anyhow::anyhow!("publishing the catalogue entry: {e}"))?;
        service_table::start_attempt(&self.client().await?, &svc.event_id).await?;
        let initial_sync = self
            .collector
            .collect_once(&svc, SnapshotSource::InitialSync)
            .await
            .map_err(|e| clean_reason(&e.to_string()));
        let client = self.client().await?;
        service_table::finish_attempt(
            &client,
            &svc.event_id,
            initial_sync.is_ok(),
            initial_sync.as_ref().ok().map(|l| l.as_millis() as i64),
            initial_sync.as_ref().err().map(String::as_str),
        )
        .await?;
        let service = service_table::list(&**client, &self.secrets, Some(&svc.event_id))
            .await?
            .pop()
            .ok_or_else(|| {
                anyhow::anyhow!("service {} vanished while registering", svc.event_id)
            })?;
        tracing::info!(event_id = %svc.event_id, created = saved.created, "service registered");
        Ok(Registered {
            created: saved.created,
            webhook_secret: saved.created.then_some(saved.webhook_secret),
            initial_sync: initial_sync.map(|_| ()),
            service,
        })
    }

    pub async fn remove(&self, event_id: &str) -> anyhow::Result<bool> {
        let loaded = service_table::load(&**self.client().await?, &self.secrets, event_id).await;
        let mut entry = match loaded {
            Ok(Some(stored)) => stored.config.catalogue_entry(now_millis()),
            Ok(None) => return Ok(false),
            // A service whose stored config no longer reads can still be removed.
            Err(e) => {
                tracing::warn!(%event_id, error = %format!("{e:#}"), "removing an unreadable service");
                muster_schemas::CatalogueEntry {
                    event_id: event_id.to_owned(),
                    service_name: String::new(),
                    name: String::new(),
                    event_type: String::new(),
                    venue: None,
                    capacity: None,
                    starts_at: None,
                    ends_at: None,
                    utc_offset_minutes: None,
                    ticket_price: None,
                    cost_total: None,
                    other_income: None,
                    currency: None,
                    removed: true,
                    at: now_millis(),
                }
            }
        };
        entry.removed = true;
        self.collector
            .publish(&entry)
            .await
            .map_err(|e| anyhow::anyhow!("publishing the catalogue removal: {e}"))?;
        let removed = service_table::delete(&**self.client().await?, event_id).await?;
        if removed {
            tracing::info!(%event_id, "service removed");
        }
        Ok(removed)
    }

    pub async fn list(&self, event_id: Option<&str>) -> anyhow::Result<Vec<ServiceView>> {
        service_table::list(&**self.client().await?, &self.secrets, event_id).await
    }
}
