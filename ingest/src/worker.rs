//! `muster ingest`: leases a fair share of the registered services and keeps one task per
//! leased service. Several processes share the services through PostgreSQL leases, so no
//! service is polled by two of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::readiness::PartState;
use muster_runtime::secrets::Secrets;
use muster_runtime::{Env, KafkaConfig, Shutdown, Workers};
use muster_schemas::{CatalogueEntry, Codec, RawCheckin, RawSnapshot, ServiceHealth, TopicRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::collector::Collector;
use crate::config::IngestConfig;
use crate::health_queue::HealthQueue;
use crate::retry::RetryPolicy;
use crate::schedule::{self, TaskContext};
use crate::service_table::{self, StoredService};

const PART: &str = "ingest";

/// The Kafka producer, HTTP client and codec that collection and registration share.
pub async fn collector(
    kafka: &KafkaConfig,
    codec: Codec,
    cfg: &IngestConfig,
) -> anyhow::Result<Collector> {
    muster_runtime::topics::ensure(
        kafka,
        &[RawSnapshot::TOPIC, RawCheckin::TOPIC, ServiceHealth::TOPIC],
    )
    .await?;
    muster_runtime::topics::ensure_compacted(kafka, &[CatalogueEntry::TOPIC]).await?;
    for (topic, schema) in [
        (CatalogueEntry::TOPIC, CatalogueEntry::SCHEMA),
        (RawSnapshot::TOPIC, RawSnapshot::SCHEMA),
        (RawCheckin::TOPIC, RawCheckin::SCHEMA),
        (ServiceHealth::TOPIC, ServiceHealth::SCHEMA),
    ] {
        codec
            .register_schema(topic, schema)
            .await
            .with_context(|| format!("registering the schema of {topic}"))?;
    }
    Ok(Collector {
        http: crate::collector::http_client(cfg.request_timeout)
            .context("building the HTTP client")?,
        tokens: Default::default(),
        producer: kafka
            .producer()
            .create()
            .context("creating the Kafka producer")?,
        codec,
        topic_override: None,
        max_body_bytes: cfg.max_body_bytes,
    })
}

/// `muster ingest`.
pub fn spawn(env: &Env, cfg: IngestConfig) -> Workers {
    let env = env.clone();
    Workers::one("ingest", async move { run(&env, cfg).await })
}

async fn run(env: &Env, cfg: IngestConfig) -> anyhow::Result<()> {
    let Env {
        pool,
        secrets,
        health,
        shutdown,
        ..
    } = env;
    health.set(PART, PartState::Starting);
    let collector = collector(&env.kafka, env.codec.clone(), &cfg).await?;
    {
        let client = pool.get().await.context("connecting to PostgreSQL")?;
        for svc in &cfg.services {
            svc.validate()
                .map_err(|e| anyhow::anyhow!("ingest.services[{}]: {e}", svc.event_id))?;
            service_table::upsert(&**client, secrets, svc).await?;
        }
        // The catalogue topic holds every registered event, including those registered
        // before it existed or while Kafka was unreachable: republish them all (compacted, so
        // this costs one record per event).
        let ids: Vec<String> = client
            .query("SELECT event_id FROM services", &[])
            .await
            .context("listing services")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for id in ids {
            match service_table::load(&**client, secrets, &id).await {
                Ok(Some(s)) => collector
                    .publish(
                        &s.config
                            .catalogue_entry(muster_schemas::records::now_millis()),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("publishing the catalogue entry of {id}: {e}"))?,
                Ok(None) => {}
                // The lease loop skips it too; one bad row must not stop every other service.
                Err(e) => {
                    tracing::error!(event_id = %id, error = %format!("{e:#}"), "unreadable stored service; not in the catalogue")
                }
            }
        }
    }
    let member = format!(
        "{}-{}-{:08x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "ingest".into()),
        std::process::id(),
        rand::random::<u32>()
    );
    tracing::info!(%member, "ingest member started");
    let (lease_tx, lease_rx) = watch::channel(Instant::now());
    let ctx = TaskContext {
        collector: collector.clone(),
        pool: pool.clone(),
        lease_valid_until: lease_rx,
        health_check_interval: cfg.health_check_interval,
        health_policy: Default::default(),
        health_queue: HealthQueue::spawn(
            collector.clone(),
            RetryPolicy {
                initial_backoff_ms: 200,
                max_backoff_ms: 10_000,
                ..RetryPolicy::default()
            },
            shutdown.child_token(),
        ),
    };
    let mut running: HashMap<String, Task> = HashMap::new();
    loop {
        let started = Instant::now();
        match lease(pool, secrets, &member, cfg.lease_ttl).await {
            Ok(leases) => {
                // Trust the leases a refresh interval less than their TTL, so a stalled process
                // stops polling before another may take over.
                let _ = lease_tx.send(started + cfg.lease_ttl.saturating_sub(cfg.refresh_interval));
                let handed_back = reconcile(leases, &ctx, &mut running, shutdown).await;
                // Only now that their tasks have stopped: see `service_table::Leases::hand_back`.
                if !handed_back.is_empty()
                    && let Err(e) = release(pool, &member, &handed_back).await
                {
                    tracing::warn!(error = %format!("{e:#}"), "releasing leases failed; they expire instead");
                }
                health.ready(PART);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "renewing service leases failed");
                health.failing(PART, format!("{e:#}"));
            }
        }
        metrics::gauge!("muster_ingest_services").set(running.len() as f64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(cfg.refresh_interval) => {}
        }
    }
    for (_, task) in running.drain() {
        task.stop().await;
    }
    if let Ok(client) = pool.get().await {
        service_table::release_all(&**client, &member).await?;
    }
    rdkafka::producer::Producer::flush(&collector.producer, Duration::from_secs(10))
        .context("flushing the producer")?;
    Ok(())
}

async fn lease(
    pool: &deadpool_postgres::Pool,
    secrets: &Secrets,
    member: &str,
    ttl: Duration,
) -> anyhow::Result<service_table::Leases> {
    let mut client = pool.get().await.context("connecting to PostgreSQL")?;
    service_table::renew_and_claim(&mut client, secrets, member, ttl).await
}

async fn release(
    pool: &deadpool_postgres::Pool,
    member: &str,
    event_ids: &[String],
) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to PostgreSQL")?;
    service_table::release(&**client, member, event_ids).await
}

/// A leased service's running schedule.
struct Task {
    service: StoredService,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Task {
    /// Stops the schedule and waits until it has, collection in progress included.
    async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.handle.await {
            tracing::error!(event_id = %self.service.config.event_id, error = %e, "service task failed");
        }
    }
}

/// Starts tasks for new or changed services and stops those no longer leased, waiting until
/// they have stopped. Returns the services to hand back, all stopped.
async fn reconcile(
    leases: service_table::Leases,
    ctx: &TaskContext,
    running: &mut HashMap<String, Task>,
    shutdown: &Shutdown,
) -> Vec<String> {
    let wanted: HashMap<String, service_table::Lease> = leases
        .keep
        .into_iter()
        .map(|l| (l.service.config.event_id.clone(), l))
        .collect();
    let gone: Vec<String> = running
        .iter()
        .filter(|(id, task)| wanted.get(*id).is_none_or(|l| l.service != task.service))
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        if let Some(task) = running.remove(&id) {
            task.stop().await;
            tracing::info!(event_id = %id, "service released");
        }
    }
    for (id, lease) in wanted {
        if running.contains_key(&id) {
            continue;
        }
        let stop = shutdown.child_token();
        tracing::info!(event_id = %id, interval_s = lease.service.config.sync_settings.interval, "service leased");
        let service = lease.service.clone();
        let handle = tokio::spawn(schedule::run(lease, ctx.clone(), stop.clone()));
        running.insert(
            id,
            Task {
                service,
                stop,
                handle,
            },
        );
    }
    leases.hand_back
}
