//! One flat Arrow schema per archived topic. Columns are the record's fields in snake_case,
//! times as UTC timestamps, nested lists as JSON text; `kafka_partition` and `kafka_offset` say
//! where in the log each row was read (unique per topic, which is what "exactly once" counts).

use std::sync::{Arc, LazyLock};

use arrow::array::TimestampMillisecondArray;
use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use muster_schemas::{NormalizedMetrics, RawCheckin, RawSnapshot, TopicRecord};

/// A decoded record and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub partition: i32,
    pub offset: i64,
    pub record: T,
}

/// A topic record the archive knows how to lay out.
pub trait Archived: TopicRecord + Sized {
    fn event_id(&self) -> &str;
    /// Milliseconds since the epoch of when it happened; picks the row's `date` folder.
    fn event_time(&self) -> i64;
    fn schema() -> SchemaRef;
    /// The columns of `rows`, in the order of `schema()`.
    fn columns(rows: &[Located<Self>]) -> Vec<ArrayRef>;
}

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn strings<T>(rows: &[Located<T>], f: impl Fn(&T) -> &str) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(|r| Some(f(&r.record)))
            .collect::<StringArray>(),
    )
}

fn times<T>(rows: &[Located<T>], f: impl Fn(&T) -> i64) -> ArrayRef {
    let millis: Vec<i64> = rows.iter().map(|r| f(&r.record)).collect();
    Arc::new(TimestampMillisecondArray::from(millis).with_timezone("UTC"))
}

fn longs<T>(rows: &[Located<T>], f: impl Fn(&T) -> Option<i64>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| f(&r.record)).collect::<Int64Array>())
}

/// `kafka_partition` and `kafka_offset`, the last two columns of every schema.
fn position_fields() -> [Field; 2] {
    [
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
    ]
}

fn position_columns<T>(rows: &[Located<T>]) -> [ArrayRef; 2] {
    [
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.partition),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
    ]
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .into_iter()
            .chain(position_fields())
            .collect::<Vec<_>>(),
    ))
}

static SNAPSHOTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("data_schema", DataType::Utf8, false),
        Field::new("fetched_at", utc_millis(), false),
        Field::new("http_status", DataType::Int32, false),
        Field::new("body", DataType::Utf8, false),
        Field::new("capacity", DataType::Int64, true),
    ])
});

impl Archived for RawSnapshot {
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn event_time(&self) -> i64 {
        self.fetched_at
    }

    fn schema() -> SchemaRef {
        SNAPSHOTS.clone()
    }

    fn columns(rows: &[Located<Self>]) -> Vec<ArrayRef> {
        let mut c = vec![
            strings(rows, |r| &r.event_id),
            strings(rows, |r| &r.service_name),
            strings(rows, |r| r.source.as_str()),
            strings(rows, |r| &r.data_schema),
            times(rows, |r| r.fetched_at),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.record.http_status),
            )),
            strings(rows, |r| &r.body),
            longs(rows, |r| r.capacity),
        ];
        c.extend(position_columns(rows));
        c
    }
}

static CHECKINS: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("gate_id", DataType::Utf8, false),
        Field::new("participant", DataType::Utf8, false),
        Field::new("direction", DataType::Utf8, false),
        Field::new("scanned_at", utc_millis(), false),
        Field::new("received_at", utc_millis(), false),
        Field::new("delivery_id", DataType::Utf8, false),
    ])
});

impl Archived for RawCheckin {
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn event_time(&self) -> i64 {
        self.scanned_at
    }

    fn schema() -> SchemaRef {
        CHECKINS.clone()
    }

    fn columns(rows: &[Located<Self>]) -> Vec<ArrayRef> {
        let mut c = vec![
            strings(rows, |r| &r.event_id),
            strings(rows, |r| &r.gate_id),
            strings(rows, |r| &r.participant),
            strings(rows, |r| r.direction.as_str()),
            times(rows, |r| r.scanned_at),
            times(rows, |r| r.received_at),
            strings(rows, |r| &r.delivery_id),
        ];
        c.extend(position_columns(rows));
        c
    }
}

static NORMALIZED: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema(vec![
        Field::new("event_id", DataType::Utf8, false),
        // The record's `timestamp`, named as in `event_realtime` (and not a SQL keyword).
        Field::new("observed_at", utc_millis(), false),
        Field::new("fetched_at", utc_millis(), false),
        Field::new("total_registered", DataType::Int64, false),
        Field::new("current_attendees", DataType::Int64, false),
        Field::new("checked_in", DataType::Int64, false),
        Field::new("checked_out", DataType::Int64, false),
        Field::new("attendance_rate", DataType::Float64, false),
        // JSON arrays: `[{"gateId", "status", "throughput"}]` and `[{"id", "severity", "message"}]`.
        Field::new("gate_activity", DataType::Utf8, false),
        Field::new("alerts", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("capacity", DataType::Int64, true),
        // Lineage: the raw record it was normalized from.
        Field::new("source_topic", DataType::Utf8, false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
    ])
});

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain structs always serialize")
}

impl Archived for NormalizedMetrics {
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn event_time(&self) -> i64 {
        self.timestamp
    }

    fn schema() -> SchemaRef {
        NORMALIZED.clone()
    }

    fn columns(rows: &[Located<Self>]) -> Vec<ArrayRef> {
        let gates: Vec<String> = rows.iter().map(|r| json(&r.record.gate_activity)).collect();
        let alerts: Vec<String> = rows.iter().map(|r| json(&r.record.alerts)).collect();
        let mut c = vec![
            strings(rows, |r| &r.event_id),
            times(rows, |r| r.timestamp),
            times(rows, |r| r.fetched_at),
            longs(rows, |r| Some(r.total_registered)),
            longs(rows, |r| Some(r.current_attendees)),
            longs(rows, |r| Some(r.checked_in)),
            longs(rows, |r| Some(r.checked_out)),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.record.attendance_rate),
            )),
            Arc::new(StringArray::from(gates)),
            Arc::new(StringArray::from(alerts)),
            strings(rows, |r| &r.status),
            longs(rows, |r| r.capacity),
            strings(rows, |r| &r.source.topic),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.record.source.partition),
            )),
            longs(rows, |r| Some(r.source.offset)),
        ];
        c.extend(position_columns(rows));
        c
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMillisecondType};
    use arrow::record_batch::RecordBatch;
    use muster_schemas::{Direction, GateActivity, SnapshotSource, SourceOffset, UpstreamAlert};

    pub fn checkin(event: &str, scanned_at: i64) -> RawCheckin {
        RawCheckin {
            event_id: event.into(),
            gate_id: "north".into(),
            participant: "p-1".into(),
            direction: Direction::In,
            scanned_at,
            received_at: scanned_at + 5,
            delivery_id: "d-1".into(),
        }
    }

    fn batch<T: Archived>(rows: &[Located<T>]) -> RecordBatch {
        RecordBatch::try_new(T::schema(), T::columns(rows)).unwrap()
    }

    #[test]
    fn checkins_become_flat_rows_with_their_log_position() {
        let rows = vec![Located {
            partition: 1,
            offset: 42,
            record: checkin("expo", 1_767_225_600_000),
        }];
        let b = batch(&rows);
        assert_eq!(b.num_rows(), 1);
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        assert_eq!(col("direction").as_string::<i32>().value(0), "in");
        let scanned = col("scanned_at");
        assert_eq!(
            scanned.data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(
            scanned.as_primitive::<TimestampMillisecondType>().value(0),
            1_767_225_600_000
        );
        assert_eq!(col("kafka_offset").as_primitive::<Int64Type>().value(0), 42);
    }

    #[test]
    fn snapshots_keep_the_body_and_a_missing_capacity_is_null() {
        let rows = vec![Located {
            partition: 0,
            offset: 7,
            record: RawSnapshot {
                event_id: "expo".into(),
                service_name: "s-attend".into(),
                source: SnapshotSource::InitialSync,
                data_schema: "s-attend/v1".into(),
                fetched_at: 1,
                http_status: 200,
                body: r#"{"attendance":{"current":3}}"#.into(),
                capacity: None,
            },
        }];
        let b = batch(&rows);
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        assert_eq!(col("source").as_string::<i32>().value(0), "initial-sync");
        assert_eq!(
            col("body").as_string::<i32>().value(0),
            r#"{"attendance":{"current":3}}"#
        );
        assert!(col("capacity").is_null(0));
    }

    #[test]
    fn normalized_lists_are_json_and_lineage_is_kept() {
        let rows = vec![Located {
            partition: 2,
            offset: 9,
            record: NormalizedMetrics {
                event_id: "expo".into(),
                timestamp: 10,
                fetched_at: 11,
                total_registered: 100,
                current_attendees: 40,
                checked_in: 45,
                checked_out: 5,
                attendance_rate: 0.4,
                gate_activity: vec![GateActivity {
                    gate_id: "g1".into(),
                    status: "open".into(),
                    throughput: 1.5,
                }],
                alerts: vec![UpstreamAlert {
                    id: "a1".into(),
                    severity: "warning".into(),
                    message: "busy".into(),
                }],
                status: "live".into(),
                source: SourceOffset {
                    topic: "muster.raw.snapshots.v1".into(),
                    partition: 1,
                    offset: 77,
                },
                capacity: Some(120),
            },
        }];
        let b = batch(&rows);
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        assert_eq!(
            col("gate_activity").as_string::<i32>().value(0),
            r#"[{"gateId":"g1","status":"open","throughput":1.5}]"#
        );
        assert_eq!(
            col("alerts").as_string::<i32>().value(0),
            r#"[{"id":"a1","severity":"warning","message":"busy"}]"#
        );
        assert_eq!(
            col("source_offset").as_primitive::<Int64Type>().value(0),
            77
        );
        assert_eq!(col("kafka_offset").as_primitive::<Int64Type>().value(0), 9);
        assert_eq!(col("capacity").as_primitive::<Int64Type>().value(0), 120);
    }
}
