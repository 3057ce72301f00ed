//! The normalizer as a processor: raw snapshots in, normalized metrics (or dead letters) out.

use async_trait::async_trait;
use muster_runtime::topics::register;
use muster_schemas::{Codec, DeadLetter, NormalizedMetrics, RawSnapshot, TopicRecord};

use super::{Normalizer, normalize, registry};
use crate::processor::{InRecord, OutRecord, Processor, dead_letter};

pub struct Normalize {
    normalizers: Vec<Box<dyn Normalizer>>,
}

impl Default for Normalize {
    fn default() -> Self {
        Self {
            normalizers: registry(),
        }
    }
}

#[async_trait]
impl Processor for Normalize {
    fn name(&self) -> &str {
        "normalize"
    }

    fn description(&self) -> String {
        let schemas: Vec<&str> = self.normalizers.iter().map(|n| n.data_schema()).collect();
        format!(
            "raw snapshots → normalized metrics (dataSchemas: {})",
            schemas.join(", ")
        )
    }

    fn inputs(&self) -> Vec<String> {
        vec![RawSnapshot::TOPIC.into()]
    }

    fn outputs(&self) -> Vec<String> {
        vec![NormalizedMetrics::TOPIC.into()]
    }

    async fn register(&self, codec: &Codec) -> anyhow::Result<()> {
        register::<NormalizedMetrics>(codec).await
    }

    async fn process(&self, batch: &[InRecord], codec: &Codec) -> anyhow::Result<Vec<OutRecord>> {
        let mut out = Vec::with_capacity(batch.len());
        for record in batch {
            out.push(self.one(codec, record).await?);
        }
        Ok(out)
    }
}

impl Normalize {
    async fn one(&self, codec: &Codec, record: &InRecord) -> anyhow::Result<OutRecord> {
        let source = record.source();
        let raw: RawSnapshot = match codec.decode(&record.payload).await {
            Ok(r) => r,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                let dl = DeadLetter::new(
                    "decode",
                    e.to_string(),
                    source,
                    None,
                    record.payload.clone(),
                );
                return dead_letter(codec, dl).await;
            }
        };
        match normalize(&self.normalizers, &raw) {
            Ok(m) => {
                let out = NormalizedMetrics {
                    event_id: raw.event_id,
                    timestamp: m.timestamp.unwrap_or(raw.fetched_at),
                    fetched_at: raw.fetched_at,
                    total_registered: m.total_registered,
                    current_attendees: m.current_attendees,
                    checked_in: m.checked_in,
                    checked_out: m.checked_out,
                    attendance_rate: m.attendance_rate(),
                    status: m.status().to_owned(),
                    gate_activity: m.gate_activity,
                    alerts: m.alerts,
                    source,
                    capacity: raw.capacity,
                };
                Ok(OutRecord {
                    topic: codec.topics().of::<NormalizedMetrics>(),
                    key: Some(out.event_id.clone()),
                    payload: codec.encode(&out).await?,
                })
            }
            Err(e) => {
                tracing::debug!(event_id = %raw.event_id, offset = record.offset, error = %e, "dead-lettered");
                let dl = DeadLetter::new(
                    "normalize",
                    e.to_string(),
                    source,
                    Some(raw.event_id),
                    raw.body.into_bytes(),
                );
                dead_letter(codec, dl).await
            }
        }
    }
}
