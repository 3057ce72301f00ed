//! `muster ingest`: keeps one poll task per registered service, following registrations.

use std::collections::HashMap;

use anyhow::Context;
use muster_runtime::{Health, KafkaConfig, Shutdown};
use muster_schemas::{Codec, RawSnapshot, TopicRecord};
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::config::IngestConfig;
use crate::poller::{self, Publisher};
use crate::service::EventServiceConfig;
use crate::store;

pub async fn run(
    cfg: IngestConfig,
    kafka: &KafkaConfig,
    codec: Codec,
    pool: deadpool_postgres::Pool,
    health: Health,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    health.set("ingest", muster_runtime::health::PartState::Starting);
    muster_runtime::topics::ensure(kafka, &[RawSnapshot::TOPIC]).await?;
    codec
        .register::<RawSnapshot>()
        .await
        .context("registering the raw snapshot schema")?;
    let producer: FutureProducer = kafka
        .producer()
        .create()
        .context("creating the Kafka producer")?;
    let http = reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .user_agent(concat!("muster/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let publisher = Publisher {
        http,
        producer: producer.clone(),
        codec,
    };
    {
        let client = pool.get().await.context("connecting to PostgreSQL")?;
        for svc in &cfg.services {
            svc.validate()
                .map_err(|e| anyhow::anyhow!("ingest.services[{}]: {e}", svc.event_id))?;
            store::upsert(&**client, svc).await?;
        }
    }
    health.ready("ingest");

    let mut running: HashMap<String, (EventServiceConfig, CancellationToken)> = HashMap::new();
    loop {
        match refresh(&pool, &publisher, &mut running, &shutdown).await {
            Ok(()) => health.ready("ingest"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading registered services failed");
                health.failing("ingest", format!("{e:#}"));
            }
        }
        metrics::gauge!("muster_ingest_services").set(running.len() as f64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(cfg.refresh_interval) => {}
        }
    }
    for (_, (_, stop)) in running.drain() {
        stop.cancel();
    }
    rdkafka::producer::Producer::flush(&producer, std::time::Duration::from_secs(10))
        .context("flushing the producer")?;
    Ok(())
}

/// Starts new or changed services and stops removed ones.
async fn refresh(
    pool: &deadpool_postgres::Pool,
    publisher: &Publisher,
    running: &mut HashMap<String, (EventServiceConfig, CancellationToken)>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to PostgreSQL")?;
    let services = store::load_all(&**client).await?;
    let wanted: HashMap<_, _> = services
        .into_iter()
        .map(|s| (s.event_id.clone(), s))
        .collect();
    running.retain(|id, (cfg, stop)| {
        let keep = wanted.get(id) == Some(cfg);
        if !keep {
            stop.cancel();
            tracing::info!(event_id = %id, "service stopped");
        }
        keep
    });
    for (id, svc) in wanted {
        if running.contains_key(&id) {
            continue;
        }
        let stop = shutdown.child_token();
        tracing::info!(event_id = %id, interval_s = svc.sync_settings.interval, "service started");
        tokio::spawn(poller::run(svc.clone(), publisher.clone(), stop.clone()));
        running.insert(id, (svc, stop));
    }
    Ok(())
}
