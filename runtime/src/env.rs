//! What every worker of a process shares, built once by the binary and handed to each stage's
//! `spawn`: cheap to clone (every field is a handle).

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use muster_schemas::Codec;

use crate::secrets::Secrets;
use crate::{DatabaseConfig, Health, KafkaConfig, RegistryConfig, SecurityConfig, Shutdown};

#[derive(Clone)]
pub struct Env {
    /// Client settings (brokers, group and topic prefixes, retention).
    pub kafka: KafkaConfig,
    /// The registry-backed Avro codec; it also carries the topic names
    /// (`codec.topics()`), so whatever encodes or decodes a record knows where it goes.
    pub codec: Codec,
    pub pool: deadpool_postgres::Pool,
    /// Keys derived from `security.secret_key`.
    pub secrets: Secrets,
    /// Readiness of every part, served at `/readyz`.
    pub health: Health,
    /// The process's Prometheus recorder, rendered at `/metrics`.
    pub metrics: PrometheusHandle,
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("kafka", &self.kafka)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Builds the clients from their settings; connects lazily (the pool on first use).
    pub fn new(
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        database: &DatabaseConfig,
        security: &SecurityConfig,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            kafka: kafka.clone(),
            codec: Codec::new(&registry.url)
                .context("creating the schema registry client")?
                .with_topics(kafka.topics()),
            pool: database.pool()?,
            secrets: security.secrets()?,
            health: Health::default(),
            metrics: crate::ops::install_metrics()?,
            shutdown,
        })
    }
}
