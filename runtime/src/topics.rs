//! Creates the topics a worker reads or writes before it starts, so that a consumer never
//! subscribes to a topic that does not exist yet (which librdkafka reports as an error), and
//! gives each its configured retention: muster is event-sourced, so the log is kept (replay
//! rebuilds from offset 0), save topics of personal data, which expire.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::KafkaConfig;

/// `[kafka.retention]`: how long topics keep records. Applied when muster creates a topic and
/// again at every start to topics that exist (so a changed setting takes effect).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Every topic but the personal ones; unset keeps records forever (`retention.ms=-1`), which
    /// replay from offset 0 needs.
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub log: Option<Duration>,
    /// Topics of personal data (check-ins, pseudonymized but personal): privacy law wants them
    /// gone after a while. A replay from offset 0 no longer sees what expired.
    #[serde(with = "humantime_serde")]
    pub personal: Duration,
    /// Which topics `personal` applies to.
    pub personal_topics: Vec<String>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            log: None,
            personal: Duration::from_secs(90 * 24 * 3600),
            personal_topics: vec!["muster.raw.checkins.v1".into()],
        }
    }
}

impl Retention {
    /// The `retention.ms` a topic gets.
    pub fn retention_ms(&self, topic: &str) -> String {
        let keep = if self.personal_topics.iter().any(|t| t == topic) {
            Some(self.personal)
        } else {
            self.log
        };
        keep.map_or_else(|| "-1".to_owned(), |d| d.as_millis().to_string())
    }

    /// Every topic config muster sets on `topic`.
    pub fn topic_config(&self, topic: &str, compacted: bool) -> Vec<(&'static str, String)> {
        let mut config = vec![("retention.ms", self.retention_ms(topic))];
        if compacted {
            config.push(("cleanup.policy", "compact".to_owned()));
        }
        config
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.personal.is_zero() || self.log.is_some_and(|d| d.is_zero()) {
            return Err("kafka.retention durations must be positive".into());
        }
        Ok(())
    }
}

/// Creates the topics whose base names are `topics` (behind `kafka.topic_prefix`), or applies
/// their retention when they exist.
/// Registers the schema of `R` for its topic (BACKWARD compatible: an incompatible one fails
/// here, before anything is written), naming the topic when it fails.
pub async fn register<R: muster_schemas::TopicRecord>(
    codec: &muster_schemas::Codec,
) -> anyhow::Result<()> {
    codec
        .register::<R>()
        .await
        .with_context(|| format!("registering the schema of {}", R::TOPIC))?;
    Ok(())
}

pub async fn ensure(kafka: &KafkaConfig, topics: &[&str]) -> anyhow::Result<()> {
    create(kafka, topics, false).await
}

/// Like `ensure`, for topics that hold the latest value per key (state, catalogues): Kafka
/// compacts them, so reading one from the start stays cheap however long it has run.
pub async fn ensure_compacted(kafka: &KafkaConfig, topics: &[&str]) -> anyhow::Result<()> {
    create(kafka, topics, true).await
}

async fn create(kafka: &KafkaConfig, bases: &[&str], compacted: bool) -> anyhow::Result<()> {
    if bases.is_empty() {
        return Ok(());
    }
    let names = kafka.topics();
    // Retention is configured by base name (`personal_topics`), whatever the prefix.
    let configs: BTreeMap<String, Vec<(&str, String)>> = bases
        .iter()
        .map(|b| (names.name(b), kafka.retention.topic_config(b, compacted)))
        .collect();
    let admin: AdminClient<DefaultClientContext> = kafka
        .client()
        .create()
        .context("creating the Kafka admin client")?;
    // librdkafka refuses a request naming a topic twice, and rdkafka 0.39 then dereferences a
    // null result (a segfault), so never send duplicates: the map has each name once.
    let topics: Vec<&str> = configs.keys().map(String::as_str).collect();
    let new: Vec<NewTopic> = configs
        .iter()
        .map(|(t, config)| {
            config.iter().fold(
                NewTopic::new(
                    t,
                    kafka.topic_partitions,
                    TopicReplication::Fixed(kafka.replication_factor),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .with_context(|| format!("creating topics {topics:?} on {}", kafka.brokers))?;
    let mut existing = Vec::new();
    for (r, config) in results.into_iter().zip(configs.values()) {
        match r {
            Ok(topic) => tracing::info!(%topic, "topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push((topic, config)),
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    for (topic, config) in existing {
        apply(&admin, &topic, config)
            .await
            .with_context(|| format!("applying the retention of topic {topic}"))?;
    }
    Ok(())
}

/// Sets `wanted` on an existing topic when it differs. Kafka's AlterConfigs replaces a topic's
/// whole dynamic config, so the topic's other dynamic settings are sent along unchanged.
async fn apply(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    wanted: &[(&str, String)],
) -> anyhow::Result<()> {
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await?
        .pop()
        .context("no answer")?
        .map_err(|code| anyhow::anyhow!("describing: {code}"))?;
    let mut dynamic: BTreeMap<&str, &str> = described
        .entries
        .iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic)
        .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)))
        .collect();
    let differs = wanted
        .iter()
        .any(|(k, v)| dynamic.get(k).copied() != Some(v.as_str()));
    if !differs {
        return Ok(());
    }
    for (k, v) in wanted {
        dynamic.insert(k, v);
    }
    let alter = dynamic.iter().fold(
        AlterConfig::new(ResourceSpecifier::Topic(topic)),
        |a, (k, v)| a.set(k, v),
    );
    for r in admin.alter_configs(&[alter], &AdminOptions::new()).await? {
        r.map_err(|(_, code)| anyhow::anyhow!("altering: {code}"))?;
    }
    tracing::info!(%topic, config = ?wanted, "topic config applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_kept_and_personal_topics_expire() {
        let r = Retention::default();
        assert_eq!(
            r.topic_config("muster.raw.snapshots.v1", false),
            [("retention.ms", "-1".to_owned())]
        );
        assert_eq!(
            r.topic_config("muster.raw.checkins.v1", false),
            [("retention.ms", (90u64 * 24 * 3600 * 1000).to_string())]
        );
        assert_eq!(
            r.topic_config("muster.alerts.state.v1", true),
            [
                ("retention.ms", "-1".to_owned()),
                ("cleanup.policy", "compact".to_owned())
            ]
        );
        let limited = Retention {
            log: Some(Duration::from_secs(3600)),
            ..Retention::default()
        };
        assert_eq!(limited.retention_ms("muster.normalized.v1"), "3600000");
        assert!(limited.validate().is_ok());
        let zero = Retention {
            personal: Duration::ZERO,
            ..Retention::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn retention_parses_from_toml_like_config() {
        let r: Retention = serde_json::from_value(serde_json::json!({
            "log": "30days", "personal": "7days"
        }))
        .unwrap();
        assert_eq!(r.retention_ms("x"), (30u64 * 86_400_000).to_string());
        assert_eq!(
            r.retention_ms("muster.raw.checkins.v1"),
            (7u64 * 86_400_000).to_string()
        );
    }
}
