//! The alerts processor: normalized metrics and service health in, alerts out. Its memory per
//! event (active alerts, usual gate throughput) is written to a compacted topic in the same
//! transaction as the alerts, and read back whenever this instance's partitions change, so a
//! restarted or rebalanced processor neither raises an alert twice nor forgets to resolve one.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use muster_runtime::KafkaConfig;
use muster_runtime::topics::register;
use muster_schemas::{
    Alert, AlertAction, AlertState, Codec, DeadLetter, NormalizedMetrics, ServiceHealth,
    TopicRecord,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;

use super::AlertRules;
use crate::processor::{InRecord, OutRecord, Processor, dead_letter};

pub struct Alerts {
    rules: AlertRules,
    /// Keyed by the state record's Kafka key: [`state_key`].
    state: Mutex<HashMap<String, AlertState>>,
}

/// Which input an event's state follows. Metrics and health come from two topics whose
/// partitions may be owned by two instances, so each keeps its own state record: neither
/// instance ever overwrites what the other decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Metrics,
    Health,
}

/// The state record's key: the event id for metrics, `{eventId}#health` for health. Both keys
/// hash like any other string; only the owner of the input partition writes each.
fn state_key(event_id: &str, family: Family) -> String {
    match family {
        Family::Metrics => event_id.to_owned(),
        Family::Health => format!("{event_id}#health"),
    }
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
        register::<Alert>(codec).await?;
        register::<AlertState>(codec).await
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
            let (key, alerts) = if codec.topics().is::<NormalizedMetrics>(&record.topic) {
                match codec.decode::<NormalizedMetrics>(&record.payload).await {
                    Ok(m) => {
                        let key = state_key(&m.event_id, Family::Metrics);
                        let s = entry(&mut states, &key, &m.event_id);
                        (key, self.rules.on_metrics(s, &m))
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
                        let key = state_key(&h.event_id, Family::Health);
                        let s = entry(&mut states, &key, &h.event_id);
                        (key, self.rules.on_health(s, &h, &source))
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
                    topic: codec.topics().of::<Alert>(),
                    key: Some(a.event_id.clone()),
                    payload: codec.encode(&a).await?,
                });
            }
            touched.insert(key);
        }
        for key in touched {
            let s = &states[&key];
            out.push(OutRecord {
                topic: codec.topics().of::<AlertState>(),
                key: Some(key.clone()),
                payload: codec.encode(s).await?,
            });
        }
        Ok(out)
    }
}

fn entry<'a>(
    states: &'a mut HashMap<String, AlertState>,
    key: &str,
    event_id: &str,
) -> &'a mut AlertState {
    states.entry(key.to_owned()).or_insert_with(|| AlertState {
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

/// Reads the compacted state topic from the start up to the high watermarks taken first. Not
/// merely to the end a `read_committed` fetch reports: the previous owner's last commit may
/// not have its markers written yet, and its state must be seen before its offsets are used.
async fn read_state(
    kafka: &KafkaConfig,
    codec: &Codec,
) -> anyhow::Result<HashMap<String, AlertState>> {
    let consumer: StreamConsumer = kafka
        .client()
        .set("group.id", kafka.group("processors.alerts.restore"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the state reader")?;
    let topic = &codec.topics().of::<AlertState>();
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of {topic}"))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in meta.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .with_context(|| format!("reading the offsets of {topic}/{}", p.id()))?;
        if high > low {
            ends.insert(p.id(), high);
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    let mut states = HashMap::new();
    if ends.is_empty() {
        return Ok(states);
    }
    consumer.assign(&tpl).context("assigning the state topic")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let position = consumer.position()?;
        let done = ends.iter().all(|(p, high)| {
            matches!(position.find_partition(topic, *p).map(|e| e.offset()),
                     Some(Offset::Offset(o)) if o >= *high)
        });
        if done {
            return Ok(states);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "reading {topic} to its end took over 2 minutes"
        );
        // A short wait: the last offsets may be transaction markers, which move the position
        // without delivering a record.
        let msg = match tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            Err(_) => continue,
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                // recv() may wake without a record while the position moves past markers.
                tracing::debug!(error = %e, "reading the alert state");
                continue;
            }
        };
        let (Some(payload), Some(key)) = (msg.payload(), msg.key()) else {
            continue;
        };
        let key = String::from_utf8_lossy(key).into_owned();
        match codec.decode::<AlertState>(payload).await {
            Ok(s) => {
                states.insert(key, s);
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            // Only this processor writes the topic; a record it cannot read is a bug to see,
            // not a reason to stop alerting for every other event.
            Err(e) => {
                tracing::error!(offset = msg.offset(), error = %e, "unreadable alert state skipped")
            }
        }
    }
}
