//! Time series (what the seed kept in InfluxDB): per event from normalized metrics, per gate
//! from the per-minute window partials, in minute buckets rolled up to hours in the same
//! transaction. Every bucket is a merge of partial aggregates (sums, counts, extremes, the
//! latest sample), so the order in which partials arrive never changes the result, and exactly
//! once application makes the sums exact.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use muster_schemas::read_models::ChangeKind;
use muster_schemas::{Codec, NormalizedMetrics};
use tokio_postgres::Transaction;

use muster_runtime::projection::refusal::BadData;
use muster_runtime::projection::{
    Decoded, Projection, Rejected, Staging, Target, TopicProjection, ts,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// The per-minute gate throughput windows written by `processors/sql/gate_throughput_1m.sql`.
pub const GATE_WINDOWS_TOPIC: &str = "muster.windows.gate-throughput-1m.v1";

/// One bucket's partial aggregate of an event's attendance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttendanceAgg {
    pub samples: i64,
    pub attendees_sum: i64,
    pub attendees_max: i64,
    pub attendees_min: i64,
    pub registered_max: i64,
    pub rate_sum: f64,
    /// The latest sample: its time and value (ties broken by the larger value, so merging is
    /// order-independent).
    pub last_at: i64,
    pub last_attendees: i64,
}

impl AttendanceAgg {
    fn of(m: &NormalizedMetrics) -> Self {
        Self {
            samples: 1,
            attendees_sum: m.current_attendees,
            attendees_max: m.current_attendees,
            attendees_min: m.current_attendees,
            registered_max: m.total_registered,
            rate_sum: m.attendance_rate,
            last_at: m.timestamp,
            last_attendees: m.current_attendees,
        }
    }

    /// Fails when a sum leaves `bigint`, as PostgreSQL would.
    pub fn merge(&mut self, o: &Self) -> Result<(), BadData> {
        self.samples = add(self.samples, o.samples, "samples")?;
        self.attendees_sum = add(self.attendees_sum, o.attendees_sum, "attendees")?;
        self.attendees_max = self.attendees_max.max(o.attendees_max);
        self.attendees_min = self.attendees_min.min(o.attendees_min);
        self.registered_max = self.registered_max.max(o.registered_max);
        self.rate_sum += o.rate_sum;
        if (o.last_at, o.last_attendees) > (self.last_at, self.last_attendees) {
            self.last_at = o.last_at;
            self.last_attendees = o.last_attendees;
        }
        Ok(())
    }
}

/// A sum of untrusted values: past `bigint` is the records' fault, never a panic or a wrap.
fn add(a: i64, b: i64, what: &str) -> Result<i64, BadData> {
    a.checked_add(b)
        .ok_or_else(|| BadData(format!("the sum of {what} is out of range for bigint")))
}

/// The start of the `width` bucket holding `at`.
fn bucket(at: i64, width: i64) -> Result<i64, BadData> {
    at.div_euclid(width)
        .checked_mul(width)
        .ok_or_else(|| BadData(format!("timestamp {at} is out of range")))
}

/// Buckets of `width` ms per event, merged within the batch (one row per key per statement).
pub fn attendance_buckets(
    records: &[NormalizedMetrics],
    width: i64,
) -> Result<BTreeMap<(String, i64), AttendanceAgg>, BadData> {
    let mut out: BTreeMap<(String, i64), AttendanceAgg> = BTreeMap::new();
    for m in records {
        let key = (m.event_id.clone(), bucket(m.timestamp, width)?);
        let agg = AttendanceAgg::of(m);
        match out.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&agg)?,
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(agg);
            }
        }
    }
    Ok(out)
}

pub struct EventSeries;

#[async_trait]
impl TopicProjection for EventSeries {
    type Record = NormalizedMetrics;
    const NAME: &'static str = "event_series";
    const TABLES: &'static [&'static str] = &["event_series_minute", "event_series_hour"];
    const ANNOUNCES: Option<ChangeKind> = Some(ChangeKind::Series);
    const MIGRATIONS: &'static [&'static str] = &["CREATE TABLE {schema}.event_series_minute (
            event_id text NOT NULL,
            bucket timestamptz NOT NULL,
            samples bigint NOT NULL,
            attendees_sum bigint NOT NULL,
            attendees_max bigint NOT NULL,
            attendees_min bigint NOT NULL,
            registered_max bigint NOT NULL,
            rate_sum double precision NOT NULL,
            last_at timestamptz NOT NULL,
            last_attendees bigint NOT NULL,
            PRIMARY KEY (event_id, bucket));
         CREATE TABLE {schema}.event_series_hour (LIKE {schema}.event_series_minute INCLUDING ALL);
         CREATE INDEX ON {schema}.event_series_minute (bucket);
         CREATE INDEX ON {schema}.event_series_hour (bucket)"];

    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()> {
        let Target { tx, schema, .. } = at;
        let records: Vec<NormalizedMetrics> = records.into_iter().map(|(_, r)| r).collect();
        for (staging, width) in ATTENDANCE.iter() {
            upsert_attendance(tx, schema, staging, &attendance_buckets(&records, *width)?).await?;
        }
        Ok(())
    }
}

/// The attendance tables' staging: the merge adds a bucket's partial to the stored one by the
/// same rules as [`AttendanceAgg::merge`].
fn attendance_staging(table: &str) -> Staging {
    use tokio_postgres::types::Type;
    Staging::new(
        table,
        &[
            ("event_id", Type::TEXT),
            ("bucket", Type::TIMESTAMPTZ),
            ("samples", Type::INT8),
            ("attendees_sum", Type::INT8),
            ("attendees_max", Type::INT8),
            ("attendees_min", Type::INT8),
            ("registered_max", Type::INT8),
            ("rate_sum", Type::FLOAT8),
            ("last_at", Type::TIMESTAMPTZ),
            ("last_attendees", Type::INT8),
        ],
        "ON CONFLICT (event_id, bucket) DO UPDATE SET
            samples = t.samples + excluded.samples,
            attendees_sum = t.attendees_sum + excluded.attendees_sum,
            attendees_max = greatest(t.attendees_max, excluded.attendees_max),
            attendees_min = least(t.attendees_min, excluded.attendees_min),
            registered_max = greatest(t.registered_max, excluded.registered_max),
            rate_sum = t.rate_sum + excluded.rate_sum,
            last_at = CASE WHEN (excluded.last_at, excluded.last_attendees)
                > (t.last_at, t.last_attendees) THEN excluded.last_at ELSE t.last_at END,
            last_attendees = CASE WHEN (excluded.last_at, excluded.last_attendees)
                > (t.last_at, t.last_attendees) THEN excluded.last_attendees
                ELSE t.last_attendees END",
    )
}

static ATTENDANCE: LazyLock<[(Staging, i64); 2]> = LazyLock::new(|| {
    [
        (attendance_staging("event_series_minute"), MINUTE),
        (attendance_staging("event_series_hour"), HOUR),
    ]
});

async fn upsert_attendance(
    tx: &Transaction<'_>,
    schema: &str,
    staging: &Staging,
    buckets: &BTreeMap<(String, i64), AttendanceAgg>,
) -> Result<u64, tokio_postgres::Error> {
    if buckets.is_empty() {
        return Ok(0);
    }
    let mut stage = staging.begin(tx).await?;
    for ((event, bucket), a) in buckets {
        stage
            .write(&[
                event,
                &ts(*bucket),
                &a.samples,
                &a.attendees_sum,
                &a.attendees_max,
                &a.attendees_min,
                &a.registered_max,
                &a.rate_sum,
                &ts(a.last_at),
                &a.last_attendees,
            ])
            .await?;
    }
    stage.merge(schema).await
}

/// One gate's entries and exits in a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateAgg {
    pub entries: i64,
    pub exits: i64,
}

/// A partial window from the gate throughput processor.
#[derive(Debug, Clone, PartialEq)]
pub struct GateWindow {
    pub event_id: String,
    pub gate_id: String,
    pub window_start: i64,
    pub entries: i64,
    pub exits: i64,
}

impl GateWindow {
    /// Reads the fields by name from a record of the SQL processor's derived schema.
    pub fn from_avro(value: apache_avro::types::Value) -> Result<Self, String> {
        use apache_avro::types::Value;
        let Value::Record(fields) = value else {
            return Err("not an Avro record".into());
        };
        let mut event_id = None;
        let mut gate_id = None;
        let mut window_start = None;
        let mut entries = None;
        let mut exits = None;
        for (name, v) in fields {
            let v = match v {
                Value::Union(_, inner) => *inner,
                other => other,
            };
            match (name.as_str(), v) {
                ("eventId", Value::String(s)) => event_id = Some(s),
                ("gateId", Value::String(s)) => gate_id = Some(s),
                ("windowStart", Value::TimestampMillis(t) | Value::Long(t)) => {
                    window_start = Some(t)
                }
                ("entries", Value::Long(n)) => entries = Some(n),
                ("exits", Value::Long(n)) => exits = Some(n),
                _ => {}
            }
        }
        let missing = |f: &str| format!("gate window without a usable {f}");
        Ok(Self {
            event_id: event_id.ok_or_else(|| missing("eventId"))?,
            gate_id: gate_id.ok_or_else(|| missing("gateId"))?,
            window_start: window_start.ok_or_else(|| missing("windowStart"))?,
            entries: entries.ok_or_else(|| missing("entries"))?,
            exits: exits.ok_or_else(|| missing("exits"))?,
        })
    }
}

pub fn gate_buckets(
    windows: &[GateWindow],
    width: i64,
) -> Result<BTreeMap<(String, String, i64), GateAgg>, BadData> {
    let mut out: BTreeMap<(String, String, i64), GateAgg> = BTreeMap::new();
    for w in windows {
        let key = (
            w.event_id.clone(),
            w.gate_id.clone(),
            bucket(w.window_start, width)?,
        );
        let a = out.entry(key).or_default();
        a.entries = add(a.entries, w.entries, "entries")?;
        a.exits = add(a.exits, w.exits, "exits")?;
    }
    Ok(out)
}

pub struct GateSeries;

/// The gate tables' staging: entries and exits add up.
static GATES: LazyLock<[(Staging, i64); 2]> = LazyLock::new(|| {
    use tokio_postgres::types::Type;
    let staging = |table| {
        Staging::new(
            table,
            &[
                ("event_id", Type::TEXT),
                ("gate_id", Type::TEXT),
                ("bucket", Type::TIMESTAMPTZ),
                ("entries", Type::INT8),
                ("exits", Type::INT8),
            ],
            "ON CONFLICT (event_id, gate_id, bucket) DO UPDATE SET
                entries = t.entries + excluded.entries, exits = t.exits + excluded.exits",
        )
    };
    [
        (staging("gate_series_minute"), MINUTE),
        (staging("gate_series_hour"), HOUR),
    ]
});

#[async_trait]
impl Projection for GateSeries {
    fn name(&self) -> &'static str {
        "gate_series"
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![GATE_WINDOWS_TOPIC]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["gate_series_minute", "gate_series_hour"]
    }

    fn announces(&self) -> Option<ChangeKind> {
        Some(ChangeKind::Gates)
    }

    fn migrations(&self) -> &'static [&'static str] {
        &["CREATE TABLE {schema}.gate_series_minute (
                event_id text NOT NULL,
                gate_id text NOT NULL,
                bucket timestamptz NOT NULL,
                entries bigint NOT NULL,
                exits bigint NOT NULL,
                PRIMARY KEY (event_id, gate_id, bucket));
             CREATE TABLE {schema}.gate_series_hour (LIKE {schema}.gate_series_minute INCLUDING ALL);
             CREATE INDEX ON {schema}.gate_series_minute (bucket);
             CREATE INDEX ON {schema}.gate_series_hour (bucket)"]
    }

    async fn apply(&self, at: Target<'_>, codec: &Codec) -> anyhow::Result<Vec<Rejected>> {
        let Target { tx, schema, batch } = at;
        let mut windows = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (index, r) in batch.iter().enumerate() {
            let decoded = match codec.decode_any(&r.payload).await {
                Ok(v) => GateWindow::from_avro(v),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => Err(e.to_string()),
            };
            match decoded {
                Ok(w) => windows.push(w),
                Err(reason) => rejected.push(Rejected {
                    index,
                    reason,
                    event_id: None,
                }),
            }
        }
        for (staging, width) in GATES.iter() {
            let buckets = gate_buckets(&windows, *width)?;
            if buckets.is_empty() {
                continue;
            }
            let mut stage = staging.begin(tx).await?;
            for ((event, gate, bucket), a) in &buckets {
                stage
                    .write(&[event, gate, &ts(*bucket), &a.entries, &a.exits])
                    .await?;
            }
            stage.merge(schema).await?;
        }
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(event: &str, at: i64, current: i64) -> NormalizedMetrics {
        NormalizedMetrics::live(event, at, 100, current, at)
    }

    #[test]
    fn minute_and_hour_buckets_merge_partials_in_any_order() {
        let records = vec![
            m("a", 10_000, 5),
            m("a", 50_000, 9),
            m("a", 70_000, 7),
            m("b", 10_000, 1),
        ];
        let minutes = attendance_buckets(&records, MINUTE).unwrap();
        let a0 = minutes[&("a".to_owned(), 0)];
        assert_eq!(
            (
                a0.samples,
                a0.attendees_sum,
                a0.attendees_max,
                a0.attendees_min
            ),
            (2, 14, 9, 5)
        );
        assert_eq!((a0.last_at, a0.last_attendees), (50_000, 9));
        assert_eq!(minutes[&("a".to_owned(), 60_000)].samples, 1);
        let hours = attendance_buckets(&records, HOUR).unwrap();
        assert_eq!(hours[&("a".to_owned(), 0)].samples, 3);
        // Merging two halves in either order gives the whole.
        let (x, y) = records.split_at(2);
        let half =
            |r: &[NormalizedMetrics]| attendance_buckets(r, HOUR).unwrap()[&("a".to_owned(), 0)];
        let mut xy = half(x);
        xy.merge(&half(y)).unwrap();
        let mut yx = half(y);
        yx.merge(&half(x)).unwrap();
        assert_eq!(xy, yx);
        assert_eq!(xy, hours[&("a".to_owned(), 0)]);
    }

    #[test]
    fn gate_windows_roll_up_to_hours() {
        let w = |start, entries| GateWindow {
            event_id: "e".into(),
            gate_id: "G1".into(),
            window_start: start,
            entries,
            exits: 1,
        };
        let ws = vec![w(0, 3), w(60_000, 4), w(0, 2), w(HOUR, 1)];
        let minutes = gate_buckets(&ws, MINUTE).unwrap();
        assert_eq!(
            minutes[&("e".into(), "G1".into(), 0)],
            GateAgg {
                entries: 5,
                exits: 2
            }
        );
        let hours = gate_buckets(&ws, HOUR).unwrap();
        assert_eq!(hours[&("e".into(), "G1".into(), 0)].entries, 9);
        assert_eq!(hours[&("e".into(), "G1".into(), HOUR)].entries, 1);
    }

    #[test]
    fn sums_past_bigint_and_absurd_times_are_the_records_fault() {
        let big = [m("a", 0, i64::MAX), m("a", 1, 1)];
        let e = attendance_buckets(&big, MINUTE).unwrap_err();
        assert_eq!(e.0, "the sum of attendees is out of range for bigint");
        assert!(attendance_buckets(&[m("a", i64::MIN, 1)], MINUTE).is_err());
        let w = |entries| GateWindow {
            event_id: "e".into(),
            gate_id: "G1".into(),
            window_start: 0,
            entries,
            exits: 0,
        };
        assert!(gate_buckets(&[w(i64::MAX), w(1)], HOUR).is_err());
    }

    #[test]
    fn a_window_record_missing_a_field_is_refused_with_its_name() {
        use apache_avro::types::Value;
        let v = Value::Record(vec![
            ("eventId".into(), Value::String("e".into())),
            ("gateId".into(), Value::String("G".into())),
            ("windowStart".into(), Value::TimestampMillis(0)),
            ("entries".into(), Value::Long(1)),
        ]);
        assert_eq!(
            GateWindow::from_avro(v).unwrap_err(),
            "gate window without a usable exits"
        );
    }
}
