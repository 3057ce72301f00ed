//! Connection settings shared by every stage. Each field has a default that matches
//! `scripts/services.sh`, so a laptop needs no config file.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`MUSTER_KAFKA_BROKERS`).
    pub brokers: String,
    /// Prefix of every consumer group and transactional id, so that several muster deployments
    /// (or test runs) can share one cluster without reading each other's progress.
    pub group_prefix: String,
    /// Prefix of every topic name (and so of every registry subject), e.g. `test-4f2a.`, so that
    /// deployments or test runs sharing a cluster never read each other's records. Empty: the
    /// plain names (`muster.normalized.v1`).
    pub topic_prefix: String,
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
    /// How long topics keep records.
    pub retention: crate::topics::Retention,
    /// A consumer group member the broker has not heard from for this long is removed from the
    /// group (`session.timeout.ms`; heartbeats every third of it). A member whose process died,
    /// or whose consumer was dropped while the broker was down, stays in the group until then,
    /// and the next rebalance waits for it: librdkafka's 45 s default held fresh data back for
    /// 45 s after a broker restart. At least the broker's `group.min.session.timeout.ms` (6 s).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Longest wait between two reconnection attempts to a broker (`reconnect.backoff.max.ms`).
    /// librdkafka's 10 s default grows during an outage, so clients came back up to 10 s after
    /// the broker did; reconnecting to a broker that is down costs one refused connection.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_max: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_prefix: "muster".into(),
            topic_prefix: String::new(),
            topic_partitions: 3,
            replication_factor: 1,
            auto_offset_reset: OffsetReset::Earliest,
            options: BTreeMap::new(),
            retention: Default::default(),
            session_timeout: Duration::from_secs(6),
            reconnect_backoff_max: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_prefix", &self.group_prefix)
            .field("topic_prefix", &self.topic_prefix)
            .field("topic_partitions", &self.topic_partitions)
            .field("replication_factor", &self.replication_factor)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("options", &self.redacted_options())
            .field("retention", &self.retention)
            .field("session_timeout", &self.session_timeout)
            .field("reconnect_backoff_max", &self.reconnect_backoff_max)
            .finish()
    }
}

/// librdkafka properties that hold credentials (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `sasl.jaas.config`, …): never printed.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "oauthbearer.config",
        "credential",
    ]
    .iter()
    .any(|s| key.contains(s))
}

impl KafkaConfig {
    /// `options` with the values of credential properties replaced by `***`.
    pub fn redacted_options(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_option(k) {
                    "***".into()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// muster's settings for a client, then the user's `options`, which win.
    fn build(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set(
            "reconnect.backoff.max.ms",
            self.reconnect_backoff_max.as_millis().to_string(),
        );
        for (k, v) in settings {
            c.set(*k, *v);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// The topic names on the cluster: every base name behind `topic_prefix`.
    pub fn topics(&self) -> muster_schemas::topics::Topics {
        muster_schemas::topics::Topics::new(&self.topic_prefix)
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
        let session = self.session_timeout.as_millis();
        let (session, heartbeat) = (session.to_string(), (session / 3).to_string());
        self.build(&[
            ("group.id", &group),
            ("session.timeout.ms", &session),
            ("heartbeat.interval.ms", &heartbeat),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", self.auto_offset_reset.as_str()),
            ("isolation.level", "read_committed"),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ])
    }

    /// A [`consumer`](Self::consumer) that is a static member of the group (KIP-345) as
    /// `instance`, which the caller keeps for every consumer it creates in turn. A consumer that
    /// rejoins after losing its session (the broker was restarted: it reloads the group with
    /// the old member and the rejoin comes under a new member id) or a worker's next session
    /// then takes the old member's place at once; a dynamic member waited `session_timeout`
    /// for the old one to expire. The price: a static member does not leave the group when it
    /// stops, so its partitions wait `session_timeout` for another member.
    pub fn static_consumer(&self, group: &str, instance: &str) -> ClientConfig {
        let mut c = self.consumer(group);
        c.set(
            "group.instance.id",
            format!("{}.{instance}", self.group(group)),
        );
        c
    }

    /// A [`consumer`](Self::consumer), created.
    pub fn stream_consumer(
        &self,
        group: &str,
    ) -> anyhow::Result<rdkafka::consumer::StreamConsumer> {
        use anyhow::Context;
        self.consumer(group)
            .create()
            .with_context(|| format!("creating the Kafka consumer of {}", self.group(group)))
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

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The Confluent-compatible base URL (`MUSTER_SCHEMA_REGISTRY_URL`).
    pub url: String,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &redact_password(&self.url))
            .finish()
    }
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
    /// How long a caller waits for a free connection (or for a new one to connect) before it
    /// gets an error: with PostgreSQL down or the pool exhausted, requests fail in seconds
    /// (a `503`) instead of queueing without end.
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on every connection: no statement runs longer.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// PostgreSQL's `idle_in_transaction_session_timeout`: a transaction left open (a stuck
    /// task) is ended by the server and its locks released.
    #[serde(with = "humantime_serde")]
    pub idle_in_transaction_timeout: Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://muster:muster@127.0.0.1:5432/muster".into(),
            pool_size: 8,
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(60),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl DatabaseConfig {
    pub fn pool(&self) -> anyhow::Result<deadpool_postgres::Pool> {
        use anyhow::Context;
        let manager = deadpool_postgres::Manager::from_config(
            self.connection()?,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(self.wait_timeout))
            .create_timeout(Some(self.wait_timeout))
            .recycle_timeout(Some(self.wait_timeout))
            .build()
            .context("building the PostgreSQL pool")
    }

    /// The settings of one connection, as the pool makes them: for a connection of its own
    /// beside the pool (a `LISTEN`er).
    pub fn connection(&self) -> anyhow::Result<tokio_postgres::Config> {
        use anyhow::Context;
        let mut pg: tokio_postgres::Config = self.url.parse().with_context(|| {
            format!(
                "database.url {} is not a valid URL",
                redact_password(&self.url)
            )
        })?;
        let options = format!(
            "{} -c statement_timeout={} -c idle_in_transaction_session_timeout={}",
            pg.get_options().unwrap_or_default(),
            self.statement_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        );
        pg.options(options.trim_start());
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(self.wait_timeout);
        }
        Ok(pg)
    }

    /// Validation at load: zero durations would fail every request or disable the guard.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, d) in [
            ("wait_timeout", self.wait_timeout),
            ("statement_timeout", self.statement_timeout),
            (
                "idle_in_transaction_timeout",
                self.idle_in_transaction_timeout,
            ),
        ] {
            anyhow::ensure!(!d.is_zero(), "database.{name} must be longer than 0 s");
        }
        anyhow::ensure!(self.pool_size > 0, "database.pool_size must be at least 1");
        Ok(())
    }
}

/// The URL with its credentials replaced (`user:***@`, or `***@` for a bare token), for logs,
/// errors and `muster config`.
pub fn redact_password(url: &str) -> String {
    let Some(scheme) = url.find("://") else {
        return url.to_owned();
    };
    let authority_end = url[scheme + 3..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme + 3 + i);
    match url[scheme + 3..authority_end].rfind('@') {
        Some(at) => {
            let at = scheme + 3 + at;
            let userinfo = &url[scheme + 3..at];
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{}{shown}{}", &url[..scheme + 3], &url[at..])
        }
        None => url.to_owned(),
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
        assert_eq!(
            redact_password("https://tok3n@registry.example/apis?x=a@b"),
            "https://***@registry.example/apis?x=a@b"
        );
    }

    #[test]
    fn credential_options_are_redacted() {
        let mut k = KafkaConfig::default();
        k.options.insert("sasl.password".into(), "pw-123".into());
        k.options.insert(
            "sasl.jaas.config".into(),
            "user=\"a\" password=\"pw-123\"".into(),
        );
        k.options
            .insert("security.protocol".into(), "SASL_SSL".into());
        let shown = format!("{k:?}");
        assert!(!shown.contains("pw-123"), "{shown}");
        assert!(shown.contains("SASL_SSL"), "{shown}");
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Base64 of 32 random bytes (`MUSTER_SECRET_KEY`; `openssl rand -base64 32`). Encrypts
    /// service credentials at rest and keys participant pseudonyms; every process of a
    /// deployment needs the same one. Required unless `development` is on.
    pub secret_key: Option<crate::secrets::Secret>,
    /// Development mode (`MUSTER_DEVELOPMENT=true`; the demo and the tests set it): without a
    /// `secret_key`, use a built-in development key anyone can read. Off, a start without a
    /// key stops with an error instead of silently using that key.
    pub development: bool,
    /// How far a pushed request's `webhook-timestamp` may be from now.
    #[serde(with = "humantime_serde")]
    pub signature_tolerance: std::time::Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            development: false,
            signature_tolerance: std::time::Duration::from_secs(300),
        }
    }
}

impl SecurityConfig {
    /// The derived keys; an unset (or blank) key is an error outside development mode.
    pub fn secrets(&self) -> Result<crate::secrets::Secrets, crate::secrets::SecretError> {
        let key = self.secret_key.as_ref().filter(|k| !k.is_blank());
        if key.is_none() && !self.development {
            return Err(crate::secrets::SecretError::Missing);
        }
        let s = crate::secrets::Secrets::from_config(key.map(|k| k.expose()))?;
        if s.is_development {
            tracing::warn!(
                "development mode without MUSTER_SECRET_KEY: using the built-in development key; never do this in production"
            );
        }
        Ok(s)
    }
}

#[cfg(test)]
mod security_tests {
    use super::*;
    use crate::secrets::{Secret, SecretError};

    #[test]
    fn no_key_is_an_error_outside_development_mode() {
        let mut c = SecurityConfig::default();
        assert!(matches!(c.secrets(), Err(SecretError::Missing)));
        c.secret_key = Some(Secret::new("  "));
        assert!(matches!(c.secrets(), Err(SecretError::Missing)));
        c.development = true;
        assert!(c.secrets().unwrap().is_development);
        c.secret_key = Some(Secret::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert!(!c.secrets().unwrap().is_development);
    }
}
