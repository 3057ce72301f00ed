//! The named input streams SQL processors read: which topic, which columns, and which event
//! and arrival times decide lateness. Lateness is judged against the time the record reached
//! muster (not a worker's clock), so a replay makes exactly the same decisions.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use muster_schemas::{Codec, NormalizedMetrics, RawCheckin, TopicRecord};

use crate::processor::InRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `muster.raw.checkins.v1` as table `checkins`: event_id, gate_id, participant, direction,
    /// scanned_at, received_at.
    Checkins,
    /// `muster.normalized.v1` as table `normalized`: event_id, observed_at, fetched_at,
    /// total_registered, current_attendees, checked_in, checked_out, attendance_rate, status.
    Normalized,
}

impl std::str::FromStr for Stream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "checkins" => Ok(Self::Checkins),
            "normalized" => Ok(Self::Normalized),
            other => Err(format!(
                "unknown input stream {other:?} (known: checkins, normalized)"
            )),
        }
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A batch decoded for SQL, and the records refused (undecodable or too late) with why.
pub struct Decoded<'a> {
    pub batch: RecordBatch,
    pub rejected: Vec<(&'a InRecord, String, Option<String>)>,
}

impl Stream {
    pub fn table(self) -> &'static str {
        match self {
            Self::Checkins => "checkins",
            Self::Normalized => "normalized",
        }
    }

    pub fn topic(self) -> &'static str {
        match self {
            Self::Checkins => RawCheckin::TOPIC,
            Self::Normalized => NormalizedMetrics::TOPIC,
        }
    }

    pub fn arrow_schema(self) -> SchemaRef {
        let s = |n: &str| Field::new(n, DataType::Utf8, false);
        let i = |n: &str| Field::new(n, DataType::Int64, false);
        let t = |n: &str| Field::new(n, ts(), false);
        Arc::new(Schema::new(match self {
            Self::Checkins => vec![
                s("event_id"),
                s("gate_id"),
                s("participant"),
                s("direction"),
                t("scanned_at"),
                t("received_at"),
            ],
            Self::Normalized => vec![
                s("event_id"),
                t("observed_at"),
                t("fetched_at"),
                i("total_registered"),
                i("current_attendees"),
                i("checked_in"),
                i("checked_out"),
                Field::new("attendance_rate", DataType::Float64, false),
                s("status"),
            ],
        }))
    }

    /// Decodes Kafka records; late or undecodable ones are set aside for the dead-letter topic.
    pub async fn decode<'a>(
        self,
        codec: &Codec,
        records: &'a [InRecord],
        allowed_lateness_ms: i64,
    ) -> anyhow::Result<Decoded<'a>> {
        let mut rejected = Vec::new();
        let late = |event_ms, arrived_ms| too_late(event_ms, arrived_ms, allowed_lateness_ms);
        match self {
            Self::Checkins => {
                let mut rows = Vec::with_capacity(records.len());
                for r in records {
                    match codec.decode::<RawCheckin>(&r.payload).await {
                        Ok(c) => match late(c.scanned_at, c.received_at) {
                            Some(reason) => rejected.push((r, reason, Some(c.event_id))),
                            None => rows.push(c),
                        },
                        Err(e) if e.is_transient() => return Err(e.into()),
                        Err(e) => rejected.push((r, e.to_string(), None)),
                    }
                }
                Ok(Decoded {
                    batch: checkins_batch(&rows)?,
                    rejected,
                })
            }
            Self::Normalized => {
                let mut rows = Vec::with_capacity(records.len());
                for r in records {
                    match codec.decode::<NormalizedMetrics>(&r.payload).await {
                        Ok(m) => match late(m.timestamp, m.fetched_at) {
                            Some(reason) => rejected.push((r, reason, Some(m.event_id))),
                            None => rows.push(m),
                        },
                        Err(e) if e.is_transient() => return Err(e.into()),
                        Err(e) => rejected.push((r, e.to_string(), None)),
                    }
                }
                Ok(Decoded {
                    batch: normalized_batch(&rows)?,
                    rejected,
                })
            }
        }
    }
}

/// Why a record is too late for its window, if it is.
pub fn too_late(event_ms: i64, arrived_ms: i64, allowed_ms: i64) -> Option<String> {
    let lateness = arrived_ms - event_ms;
    (lateness > allowed_ms).then(|| {
        format!(
            "late: arrived {:.1} s after its event time, beyond the allowed lateness of {:.1} s",
            lateness as f64 / 1000.0,
            allowed_ms as f64 / 1000.0
        )
    })
}

fn utf8<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn millis(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish().with_timezone("UTC"))
}

fn int64(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = Int64Builder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

pub fn checkins_batch(rows: &[RawCheckin]) -> anyhow::Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Stream::Checkins.arrow_schema(),
        vec![
            utf8(rows.iter().map(|r| r.event_id.as_str())),
            utf8(rows.iter().map(|r| r.gate_id.as_str())),
            utf8(rows.iter().map(|r| r.participant.as_str())),
            utf8(rows.iter().map(|r| r.direction.as_str())),
            millis(rows.iter().map(|r| r.scanned_at)),
            millis(rows.iter().map(|r| r.received_at)),
        ],
    )?)
}

pub fn normalized_batch(rows: &[NormalizedMetrics]) -> anyhow::Result<RecordBatch> {
    let mut rate = Float64Builder::new();
    for r in rows {
        rate.append_value(r.attendance_rate);
    }
    Ok(RecordBatch::try_new(
        Stream::Normalized.arrow_schema(),
        vec![
            utf8(rows.iter().map(|r| r.event_id.as_str())),
            millis(rows.iter().map(|r| r.timestamp)),
            millis(rows.iter().map(|r| r.fetched_at)),
            int64(rows.iter().map(|r| r.total_registered)),
            int64(rows.iter().map(|r| r.current_attendees)),
            int64(rows.iter().map(|r| r.checked_in)),
            int64(rows.iter().map(|r| r.checked_out)),
            Arc::new(rate.finish()),
            utf8(rows.iter().map(|r| r.status.as_str())),
        ],
    )?)
}
