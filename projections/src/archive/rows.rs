//! One flat Arrow schema per archived topic. Columns are the record's fields in snake_case,
//! times as UTC timestamps, nested lists as JSON text; `kafka_partition` and `kafka_offset` say
//! where in the log each row was read (unique per topic, which is what "exactly once" counts).
//! Each column is declared once, its name and type beside how a record fills it.

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
pub trait Archived: TopicRecord + Sized + 'static {
    fn event_id(&self) -> &str;
    /// Milliseconds since the epoch of when it happened; picks the row's `date` folder.
    fn event_time(&self) -> i64;
    fn layout() -> &'static Layout<Self>;

    fn schema() -> SchemaRef {
        Self::layout().schema.clone()
    }

    /// The columns of `rows`, in the order of `schema()`.
    fn columns(rows: &[Located<Self>]) -> Vec<ArrayRef> {
        let layout = Self::layout();
        let mut columns: Vec<ArrayRef> = layout.fills.iter().map(|fill| fill(rows)).collect();
        columns.push(Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.partition),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.offset),
        )));
        columns
    }
}

type Fill<T> = Box<dyn Fn(&[Located<T>]) -> ArrayRef + Send + Sync>;

/// A record's columns: each field with how rows fill it, then `kafka_partition` and
/// `kafka_offset`.
pub struct Layout<T> {
    schema: SchemaRef,
    fills: Vec<Fill<T>>,
}

impl<T: 'static> Layout<T> {
    fn new() -> Self {
        Self {
            schema: Arc::new(Schema::empty()),
            fills: Vec::new(),
        }
    }

    fn column(
        mut self,
        name: &str,
        data_type: DataType,
        nullable: bool,
        fill: impl Fn(&[Located<T>]) -> ArrayRef + Send + Sync + 'static,
    ) -> Self {
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new(name, data_type, nullable));
        self.schema = Arc::new(Schema::new(fields));
        self.fills.push(Box::new(fill));
        self
    }

    fn text(self, name: &str, get: impl Fn(&T) -> &str + Send + Sync + 'static) -> Self {
        self.column(name, DataType::Utf8, false, move |rows| {
            Arc::new(
                rows.iter()
                    .map(|r| Some(get(&r.record)))
                    .collect::<StringArray>(),
            )
        })
    }

    /// A list or struct as JSON text.
    fn json<V: serde::Serialize>(
        self,
        name: &str,
        get: impl Fn(&T) -> &V + Send + Sync + 'static,
    ) -> Self {
        self.column(name, DataType::Utf8, false, move |rows| {
            let texts = rows.iter().map(|r| {
                serde_json::to_string(get(&r.record)).expect("plain structs always serialize")
            });
            Arc::new(StringArray::from(texts.collect::<Vec<_>>()))
        })
    }

    /// Milliseconds since the epoch, as a UTC timestamp.
    fn time(self, name: &str, get: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        let utc_millis = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        self.column(name, utc_millis, false, move |rows| {
            let millis: Vec<i64> = rows.iter().map(|r| get(&r.record)).collect();
            Arc::new(TimestampMillisecondArray::from(millis).with_timezone("UTC"))
        })
    }

    fn int(self, name: &str, get: impl Fn(&T) -> i32 + Send + Sync + 'static) -> Self {
        self.column(name, DataType::Int32, false, move |rows| {
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| get(&r.record)),
            ))
        })
    }

    fn long(self, name: &str, get: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        self.column(name, DataType::Int64, false, move |rows| {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| get(&r.record)),
            ))
        })
    }

    /// An `Int64` that is null where the record has none.
    fn optional_long(
        self,
        name: &str,
        get: impl Fn(&T) -> Option<i64> + Send + Sync + 'static,
    ) -> Self {
        self.column(name, DataType::Int64, true, move |rows| {
            Arc::new(rows.iter().map(|r| get(&r.record)).collect::<Int64Array>())
        })
    }

    fn double(self, name: &str, get: impl Fn(&T) -> f64 + Send + Sync + 'static) -> Self {
        self.column(name, DataType::Float64, false, move |rows| {
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| get(&r.record)),
            ))
        })
    }

    /// The layout ends with where each row was read.
    fn located(self) -> Self {
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new("kafka_partition", DataType::Int32, false));
        fields.push(Field::new("kafka_offset", DataType::Int64, false));
        Self {
            schema: Arc::new(Schema::new(fields)),
            fills: self.fills,
        }
    }
}

static SNAPSHOTS: LazyLock<Layout<RawSnapshot>> = LazyLock::new(|| {
    Layout::<RawSnapshot>::new()
        .text("event_id", |r| &r.event_id)
        .text("service_name", |r| &r.service_name)
        .text("source", |r| r.source.as_str())
        .text("data_schema", |r| &r.data_schema)
        .time("fetched_at", |r| r.fetched_at)
        .int("http_status", |r| r.http_status)
        .text("body", |r| &r.body)
        .optional_long("capacity", |r| r.capacity)
        .located()
});

impl Archived for RawSnapshot {
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn event_time(&self) -> i64 {
        self.fetched_at
    }

    fn layout() -> &'static Layout<Self> {
        &SNAPSHOTS
    }
}

static CHECKINS: LazyLock<Layout<RawCheckin>> = LazyLock::new(|| {
    Layout::<RawCheckin>::new()
        .text("event_id", |r| &r.event_id)
        .text("gate_id", |r| &r.gate_id)
        .text("participant", |r| &r.participant)
        .text("direction", |r| r.direction.as_str())
        .time("scanned_at", |r| r.scanned_at)
        .time("received_at", |r| r.received_at)
        .text("delivery_id", |r| &r.delivery_id)
        .located()
});

impl Archived for RawCheckin {
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn event_time(&self) -> i64 {
        self.scanned_at
    }

    fn layout() -> &'static Layout<Self> {
        &CHECKINS
    }
}

static NORMALIZED: LazyLock<Layout<NormalizedMetrics>> = LazyLock::new(|| {
    Layout::<NormalizedMetrics>::new()
        .text("event_id", |r| &r.event_id)
        // The record's `timestamp`, named as in `event_realtime` (and not a SQL keyword).
        .time("observed_at", |r| r.timestamp)
        .time("fetched_at", |r| r.fetched_at)
        .long("total_registered", |r| r.total_registered)
        .long("current_attendees", |r| r.current_attendees)
        .long("checked_in", |r| r.checked_in)
        .long("checked_out", |r| r.checked_out)
        .double("attendance_rate", |r| r.attendance_rate)
        // `[{"gateId", "status", "throughput"}]` and `[{"id", "severity", "message"}]`.
        .json("gate_activity", |r| &r.gate_activity)
        .json("alerts", |r| &r.alerts)
        .text("status", |r| &r.status)
        .optional_long("capacity", |r| r.capacity)
        // Lineage: the raw record it was normalized from.
        .text("source_topic", |r| &r.source.topic)
        .int("source_partition", |r| r.source.partition)
        .long("source_offset", |r| r.source.offset)
        .located()
});

impl Archived for NormalizedMetrics {
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn event_time(&self) -> i64 {
        self.timestamp
    }

    fn layout() -> &'static Layout<Self> {
        &NORMALIZED
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
