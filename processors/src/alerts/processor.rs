//! The alerts processor: normalized metrics and service health in, alerts out. Its memory per
//! event (active alerts, usual gate throughput) is written to a compacted topic in the same
//! transaction as the alerts, and read back whenever this instance's partitions change, so a
//! restarted or rebalanced processor neither raises an alert twice nor forgets to resolve one.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use muster_runtime::KafkaConfig;
use muster_schemas::{
    Alert, AlertAction, AlertState, Codec, DeadLetter, NormalizedMetrics, ServiceHealth,
    TopicRecord,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;

use super::AlertRules;
use crate::processor::{InRecord, OutRecord, Processor, RecordSource, dead_letter};

pub struct Alerts {
    rules: AlertRules,
    state: Mutex<HashMap<String, AlertState>>,
}

impl Alerts {
    pub fn new(rules: AlertRules) -> Self {
        Self {
            rules,
            state: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Processor for Alerts {
    fn name(&self) -> &str {
        "alerts"
    }

    fn description(&self) -> String {
        format!(
            "normalized metrics + service health → raised/resolved alerts (occupancy ≥ {:.0}%, gate down, throughput < {:.0}% of usual, service down, upstream alerts)",
            self.rules.occupancy_warning * 100.0,
            self.rules.collapse_ratio * 100.0
        )
    }

    fn inputs(&self) -> Vec<String> {
        vec![NormalizedMetrics::TOPIC.into(), ServiceHealth::TOPIC.into()]
    }

    fn outputs(&self) -> Vec<String> {
        vec![Alert::TOPIC.into()]
    }

    fn state_topics(&self) -> Vec<String> {
        vec![AlertState::TOPIC.into()]
    }

    async fn register(&self, codec: &Codec) -> anyhow::Result<()> {
        codec
            .register::<Alert>()
            .await
            .context("registering the alert schema")?;
        codec
            .register::<AlertState>()
            .await
            .context("registering the alert state schema")?;
        Ok(())
    }

    async fn restore(&self, kafka: &KafkaConfig, codec: &Codec) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let restored = read_state(kafka, codec).await?;
        tracing::info!(
            events = restored.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "alert state restored"
        );
        *self.state.lock().await = restored;
        Ok(())
    }

    async fn process(&self, batch: &[InRecord], codec: &Codec) -> anyhow::Result<Vec<OutRecord>> {
        let mut states = self.state.lock().await;
        let mut out = Vec::new();
        let mut touched = BTreeSet::new();
        for record in batch {
            let source = record.source();
            let (event_id, alerts) = if record.topic == NormalizedMetrics::TOPIC {
                match codec.decode::<NormalizedMetrics>(&record.payload).await {
                    Ok(m) => {
                        let s = entry(&mut states, &m.event_id);
                        (m.event_id.clone(), self.rules.on_metrics(s, &m))
                    }
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(e) => {
                        out.push(undecodable(codec, record, e).await?);
                        continue;
                    }
                }
            } else {
                match codec.decode::<ServiceHealth>(&record.payload).await {
                    Ok(h) => {
                        let s = entry(&mut states, &h.event_id);
                        (h.event_id.clone(), self.rules.on_health(s, &h, &source))
                    }
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(e) => {
                        out.push(undecodable(codec, record, e).await?);
                        continue;
                    }
                }
            };
            for a in alerts {
                let action = match a.action {
                    AlertAction::Raised => "raised",
                    AlertAction::Resolved => "resolved",
                };
                metrics::counter!("muster_alerts_total", "kind" => a.kind.as_str(), "action" => action)
                    .increment(1);
                out.push(OutRecord {
                    topic: Alert::TOPIC.to_owned(),
                    key: Some(a.event_id.clone()),
                    payload: codec.encode(&a).await?,
                });
            }
            touched.insert(event_id);
        }
        for event_id in touched {
            let s = &states[&event_id];
            out.push(OutRecord {
                topic: AlertState::TOPIC.to_owned(),
                key: Some(event_id.clone()),
                payload: codec.encode(s).await?,
            });
        }
        Ok(out)
    }
}

fn entry<'a>(states: &'a mut HashMap<String, AlertState>, event_id: &str) -> &'a mut AlertState {
    states
        .entry(event_id.to_owned())
        .or_insert_with(|| AlertState {
            event_id: event_id.to_owned(),
            ..Default::default()
        })
}

async fn undecodable(
    codec: &Codec,
    record: &InRecord,
    e: muster_schemas::CodecError,
) -> anyhow::Result<OutRecord> {
    let dl = DeadLetter::new(
        "alerts",
        e.to_string(),
        record.source(),
        None,
        record.payload.clone(),
    );
    dead_letter(codec, dl).await
}

/// Reads the compacted state topic from the start to its last committed record. Records are
/// keyed by event, so the latest one per event wins.
async fn read_state(
    kafka: &KafkaConfig,
    codec: &Codec,
) -> anyhow::Result<HashMap<String, AlertState>> {
    let consumer: StreamConsumer = kafka
        .client()
        .set("group.id", kafka.group("processors.alerts.restore"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the state reader")?;
    let topic = AlertState::TOPIC;
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of {topic}"))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assigning the state topic")?;
    let mut open: BTreeSet<i32> = partitions.into_iter().collect();
    let mut states = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !open.is_empty() {
        let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => anyhow::bail!(
                "reading {topic} to its end took over 2 minutes ({} partitions left)",
                open.len()
            ),
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                continue;
            }
            Ok(r) => r.with_context(|| format!("reading {topic}"))?,
        };
        let Some(payload) = msg.payload() else {
            continue;
        };
        match codec.decode::<AlertState>(payload).await {
            Ok(s) => {
                states.insert(s.event_id.clone(), s);
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            // Only this processor writes the topic; a record it cannot read is a bug to see,
            // not a reason to stop alerting for every other event.
            Err(e) => {
                tracing::error!(offset = msg.offset(), error = %e, "unreadable alert state skipped")
            }
        }
    }
    Ok(states)
}
