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
    pub rejected: Rejected<'a>,
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
        Ok(match self {
            Self::Checkins => {
                let (rows, rejected) =
                    decode_on_time::<RawCheckin>(codec, records, allowed_lateness_ms).await?;
                Decoded {
                    batch: checkins_batch(&rows)?,
                    rejected,
                }
            }
            Self::Normalized => {
                let (rows, rejected) =
                    decode_on_time::<NormalizedMetrics>(codec, records, allowed_lateness_ms)
                        .await?;
                Decoded {
                    batch: normalized_batch(&rows)?,
                    rejected,
                }
            }
        })
    }
}

/// A stream record's event time and the time it reached muster (its key is its event id).
trait Timed: TopicRecord {
    fn event_ms(&self) -> i64;
    fn arrived_ms(&self) -> i64;
}

impl Timed for RawCheckin {
    fn event_ms(&self) -> i64 {
        self.scanned_at
    }
    fn arrived_ms(&self) -> i64 {
        self.received_at
    }
}

impl Timed for NormalizedMetrics {
    fn event_ms(&self) -> i64 {
        self.timestamp
    }
    fn arrived_ms(&self) -> i64 {
        self.fetched_at
    }
}

type Rejected<'a> = Vec<(&'a InRecord, String, Option<String>)>;

/// Decodes records, setting aside the undecodable and the late with the reason.
async fn decode_on_time<'a, R: Timed>(
    codec: &Codec,
    records: &'a [InRecord],
    allowed_lateness_ms: i64,
) -> anyhow::Result<(Vec<R>, Rejected<'a>)> {
    let mut rows = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for r in records {
        match codec.decode::<R>(&r.payload).await {
            Ok(row) => match implausible_time(row.event_ms(), row.arrived_ms())
                .or_else(|| too_late(row.event_ms(), row.arrived_ms(), allowed_lateness_ms))
            {
                Some(reason) => rejected.push((r, reason, row.key().map(str::to_owned))),
                None => rows.push(row),
            },
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => rejected.push((r, e.to_string(), None)),
        }
    }
    Ok((rows, rejected))
}

/// Earliest and latest times a record may carry: 2000-01-01 and 2200-01-01 UTC, in ms.
const PLAUSIBLE_MS: std::ops::Range<i64> = 946_684_800_000..7_258_118_400_000;

/// Why a record's times cannot be windowed, if they cannot: DataFusion works in nanoseconds
/// (years 1677 to 2262), and one time outside fails the whole batch for every event, forever.
pub fn implausible_time(event_ms: i64, arrived_ms: i64) -> Option<String> {
    [("event", event_ms), ("arrival", arrived_ms)]
        .into_iter()
        .find(|(_, ms)| !PLAUSIBLE_MS.contains(ms))
        .map(|(what, ms)| {
            format!("implausible {what} time: {ms} ms is outside 2000-01-01..2200-01-01 UTC")
        })
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
