//! Connection settings shared by every stage. Each field has a default that matches
//! `scripts/services.sh`, so a laptop needs no config file.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`MUSTER_KAFKA_BROKERS`).
    pub brokers: String,
    /// Prefix of every consumer group and transactional id, so that several muster deployments
    /// (or test runs) can share one cluster without reading each other's progress.
    pub group_prefix: String,
    /// Partitions of the topics muster creates (existing topics are left as they are). More
    /// partitions allow more workers of each kind.
    pub topic_partitions: i32,
    /// Replication factor of the topics muster creates; 1 suits a single local broker, use 3 on
    /// a real cluster.
    pub replication_factor: i32,
    /// Where a consumer group without committed offsets starts: `earliest` replays the whole
    /// log (what event sourcing wants); `latest` skips history (tests on a shared cluster).
    pub auto_offset_reset: OffsetReset,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.mechanism`), applied to every
    /// client after muster's own.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_prefix: "muster".into(),
            topic_partitions: 3,
            replication_factor: 1,
            auto_offset_reset: OffsetReset::Earliest,
            options: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// muster's settings for a client, then the user's `options`, which win.
    fn build(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in settings {
            c.set(*k, *v);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// A plain client (admin, metadata).
    pub fn client(&self) -> ClientConfig {
        self.build(&[])
    }

    /// The group id of a worker kind, e.g. `muster.processors.normalize`.
    pub fn group(&self, name: &str) -> String {
        format!("{}.{name}", self.group_prefix)
    }

    /// A consumer that commits nothing by itself and only sees committed transactions.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let group = self.group(group);
        self.build(&[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", self.auto_offset_reset.as_str()),
            ("isolation.level", "read_committed"),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ])
    }

    /// An idempotent producer: retries never duplicate or reorder a partition's records.
    pub fn producer(&self) -> ClientConfig {
        self.build(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", "zstd"),
            ("linger.ms", "5"),
        ])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    Earliest,
    Latest,
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The Confluent-compatible base URL (`MUSTER_SCHEMA_REGISTRY_URL`).
    pub url: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8081/apis/ccompat/v7".into(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db` (`MUSTER_DATABASE_URL`).
    pub url: String,
    /// Connections per process.
    pub pool_size: usize,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://muster:muster@127.0.0.1:5432/muster".into(),
            pool_size: 8,
        }
    }
}

impl DatabaseConfig {
    pub fn pool(&self) -> anyhow::Result<deadpool_postgres::Pool> {
        use anyhow::Context;
        let pg: tokio_postgres::Config = self.url.parse().with_context(|| {
            format!(
                "database.url {} is not a valid URL",
                redact_password(&self.url)
            )
        })?;
        let manager = deadpool_postgres::Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(self.pool_size)
            .build()
            .context("building the PostgreSQL pool")
    }
}

/// The URL with its password replaced, for logs and errors.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://muster:secret@127.0.0.1:5432/muster"),
            "postgres://muster:***@127.0.0.1:5432/muster"
        );
        assert_eq!(redact_password("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn user_options_override_defaults() {
        let mut k = KafkaConfig::default();
        k.options.insert("acks".into(), "1".into());
        assert_eq!(k.producer().get("acks"), Some("1"));
        assert_eq!(k.consumer("x").get("group.id"), Some("muster.x"));
    }
}

/// `[security]` in the config file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Base64 of 32 random bytes (`MUSTER_SECRET_KEY`; `openssl rand -base64 32`). Encrypts
    /// service credentials at rest and keys participant pseudonyms; every process of a
    /// deployment needs the same one. Unset: a built-in development key, with a warning.
    pub secret_key: Option<String>,
    /// How far a pushed request's `webhook-timestamp` may be from now.
    #[serde(with = "humantime_serde")]
    pub signature_tolerance: std::time::Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            signature_tolerance: std::time::Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("signature_tolerance", &self.signature_tolerance)
            .finish()
    }
}

impl SecurityConfig {
    pub fn secrets(&self) -> Result<crate::secrets::Secrets, crate::secrets::SecretError> {
        let key = self.secret_key.as_deref().filter(|k| !k.trim().is_empty());
        let s = crate::secrets::Secrets::from_config(key)?;
        if s.is_development {
            tracing::warn!(
                "MUSTER_SECRET_KEY is not set: using the built-in development key; set it in production"
            );
        }
        Ok(s)
    }
}
