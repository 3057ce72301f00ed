//! Creates the topics a worker reads or writes before it starts, so that a consumer never
//! subscribes to a topic that does not exist yet (which librdkafka reports as an error).

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaConfig;

pub async fn ensure(kafka: &KafkaConfig, topics: &[&str]) -> anyhow::Result<()> {
    create(kafka, topics, &[]).await
}

/// Like `ensure`, for topics that hold the latest value per key (state, catalogues): Kafka
/// compacts them, so reading one from the start stays cheap however long it has run.
pub async fn ensure_compacted(kafka: &KafkaConfig, topics: &[&str]) -> anyhow::Result<()> {
    create(kafka, topics, &[("cleanup.policy", "compact")]).await
}

async fn create(
    kafka: &KafkaConfig,
    topics: &[&str],
    config: &[(&str, &str)],
) -> anyhow::Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = kafka
        .client()
        .create()
        .context("creating the Kafka admin client")?;
    // librdkafka refuses a request naming a topic twice, and rdkafka 0.39 then dereferences a
    // null result (a segfault), so never send duplicates.
    let mut topics = topics.to_vec();
    topics.sort_unstable();
    topics.dedup();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
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
    for r in results {
        match r {
            Ok(topic) => tracing::info!(%topic, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}
