//! Watches what every worker depends on, so that `/readyz` names the part that is down
//! (`postgres`, `kafka`) instead of only saying "not ready", and recovers by itself.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::{Health, KafkaConfig, Shutdown};

/// How long one probe may take; a dependency slower than this counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes PostgreSQL (`SELECT 1` through the worker's pool) and the Kafka cluster (metadata)
/// every `every`, until shutdown.
pub fn spawn(
    health: Health,
    pool: deadpool_postgres::Pool,
    kafka: &KafkaConfig,
    every: Duration,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let consumer: std::sync::Arc<BaseConsumer> = std::sync::Arc::new(kafka.client().create()?);
    Ok(tokio::spawn(async move {
        loop {
            match tokio::time::timeout(PROBE_TIMEOUT, postgres(&pool)).await {
                Ok(Ok(())) => health.ready("postgres"),
                Ok(Err(e)) => health.failing("postgres", format!("{e:#}")),
                Err(_) => health.failing("postgres", "no answer within 3 s"),
            }
            let c = consumer.clone();
            let kafka = tokio::task::spawn_blocking(move || {
                c.fetch_metadata(None, PROBE_TIMEOUT)
                    .map(|m| m.brokers().len())
            })
            .await;
            match kafka {
                Ok(Ok(n)) if n > 0 => health.ready("kafka"),
                Ok(Ok(_)) => health.failing("kafka", "no broker in the cluster metadata"),
                Ok(Err(e)) => health.failing("kafka", e),
                Err(e) => health.failing("kafka", e),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }))
}

async fn postgres(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let client = pool.get().await?;
    client.execute("SELECT 1", &[]).await?;
    Ok(())
}
