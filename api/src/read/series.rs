//! The series projections: per event (`event_series_minute`, `event_series_hour`) and per gate
//! (`gate_series_minute`, `gate_series_hour`), read over a time range at the coarsest
//! resolution that still answers it, so that no answer scans more rows than it shows.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::{Client, column};
use crate::domain::{Direction, GateWindow};
use crate::problem::Problem;
use crate::range::Resolution;

/// One minute of an event's last hour.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinutePoint {
    pub minute: DateTime<Utc>,
    pub samples: i64,
    pub attendees_max: i64,
    pub attendees_min: i64,
    pub attendees_last: i64,
    pub attendance_rate_avg: f64,
}

/// How far back "the last hour" reaches from `now`: the minutes it shows start here.
pub fn last_hour_from(now: DateTime<Utc>) -> DateTime<Utc> {
    now - TimeDelta::minutes(60)
}

/// The last hour of one event, by minute.
pub async fn last_hour(client: &Client, event_id: &str) -> Result<Vec<MinutePoint>, Problem> {
    let ids = [event_id.to_owned()];
    Ok(last_hours(client, Some(&ids))
        .await?
        .remove(event_id)
        .unwrap_or_default())
}

/// The last hour by minute of each of `ids` (every event's when `None`) that has one; the
/// in-memory view fills and refreshes itself with this.
pub async fn last_hours(
    client: &Client,
    ids: Option<&[String]>,
) -> Result<HashMap<String, Vec<MinutePoint>>, Problem> {
    let stmt = client
        .prepare_cached(
            "SELECT event_id, bucket, samples, attendees_max, attendees_min, last_attendees,
                    rate_sum / samples AS rate
             FROM event_series_minute
             WHERE ($1::text[] IS NULL OR event_id = ANY($1)) AND bucket >= $2
             ORDER BY event_id, bucket",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&ids, &last_hour_from(Utc::now())])
        .await?;
    let mut out: HashMap<String, Vec<MinutePoint>> = HashMap::new();
    for r in &rows {
        out.entry(column(r, "event_id")?)
            .or_default()
            .push(MinutePoint {
                minute: column(r, "bucket")?,
                samples: column(r, "samples")?,
                attendees_max: column(r, "attendees_max")?,
                attendees_min: column(r, "attendees_min")?,
                attendees_last: column(r, "last_attendees")?,
                attendance_rate_avg: column(r, "rate")?,
            });
    }
    Ok(out)
}

/// One bucket of an event's stored series.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    pub bucket: DateTime<Utc>,
    pub samples: i64,
    pub attendees_avg: f64,
    pub attendees_max: i64,
    pub attendees_min: i64,
    pub attendees_last: i64,
    pub registered_max: i64,
    pub attendance_rate_avg: f64,
}

/// One bucket of a gate's stored series.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatePoint {
    pub gate_id: String,
    pub bucket: DateTime<Utc>,
    pub entries: i64,
    pub exits: i64,
}

/// A window `[from, to)` of one event's stored series at one resolution, at most `limit` rows.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub event_id: &'a str,
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: i64,
}

/// The event's buckets in the window, oldest first.
pub async fn event_points(client: &Client, w: Window<'_>) -> Result<Vec<SeriesPoint>, Problem> {
    let rows = window(
        client,
        &w,
        "bucket, samples, attendees_sum::float8 / samples AS attendees_avg, attendees_max,
         attendees_min, last_attendees, registered_max, rate_sum / samples AS rate",
        w.resolution.event_table(),
        "bucket",
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SeriesPoint {
                bucket: column(r, "bucket")?,
                samples: column(r, "samples")?,
                attendees_avg: column(r, "attendees_avg")?,
                attendees_max: column(r, "attendees_max")?,
                attendees_min: column(r, "attendees_min")?,
                attendees_last: column(r, "last_attendees")?,
                registered_max: column(r, "registered_max")?,
                attendance_rate_avg: column(r, "rate")?,
            })
        })
        .collect()
}

/// The event's gates' buckets in the window, oldest first.
pub async fn gate_points(client: &Client, w: Window<'_>) -> Result<Vec<GatePoint>, Problem> {
    let rows = window(
        client,
        &w,
        "gate_id, bucket, entries, exits",
        w.resolution.gate_table(),
        "bucket, gate_id",
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(GatePoint {
                gate_id: column(r, "gate_id")?,
                bucket: column(r, "bucket")?,
                entries: column(r, "entries")?,
                exits: column(r, "exits")?,
            })
        })
        .collect()
}

async fn window(
    client: &Client,
    w: &Window<'_>,
    columns: &str,
    table: &str,
    order: &str,
) -> Result<Vec<Row>, Problem> {
    Ok(client
        .query(
            &format!(
                "SELECT {columns} FROM {table}
                 WHERE event_id = $1 AND bucket >= $2 AND bucket < $3
                 ORDER BY {order} LIMIT $4"
            ),
            &[&w.event_id, &w.from, &w.to, &w.limit],
        )
        .await?)
}

/// How attendance moved over the range: first against last bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trend {
    /// Within ±5 % is steady.
    pub direction: Direction,
    pub from_attendees: i64,
    pub to_attendees: i64,
    pub change: i64,
    /// change / from; absent when the range starts at 0.
    pub change_pct: Option<f64>,
    pub peak_attendees: i64,
    pub since: DateTime<Utc>,
}

impl Trend {
    pub fn new(from: i64, to: i64, peak: i64, since: DateTime<Utc>) -> Self {
        let change = to - from;
        let change_pct = (from != 0).then(|| change as f64 / from as f64);
        let direction = match change_pct {
            Some(p) if p > 0.05 => Direction::Rising,
            Some(p) if p < -0.05 => Direction::Falling,
            Some(_) => Direction::Steady,
            None if change > 0 => Direction::Rising,
            None => Direction::Steady,
        };
        Self {
            direction,
            from_attendees: from,
            to_attendees: to,
            change,
            change_pct,
            peak_attendees: peak,
            since,
        }
    }
}

/// The ids of events and the start of the range a dashboard query reads.
#[derive(Debug, Clone, Copy)]
pub struct Range<'a> {
    pub ids: &'a [String],
    pub since: DateTime<Utc>,
    pub resolution: Resolution,
}

impl Range<'_> {
    /// The bucket holding `since` at `resolution`'s stored series, so that a range starting
    /// mid-bucket still reads that bucket.
    fn start(&self, resolution: Resolution) -> DateTime<Utc> {
        let step = match resolution {
            Resolution::Minute => TimeDelta::minutes(1),
            Resolution::Hour | Resolution::Day => TimeDelta::hours(1),
        };
        self.since.duration_trunc(step).unwrap_or(self.since)
    }
}

/// First, last and peak attendees of each event over the range.
pub async fn trends(client: &Client, range: Range<'_>) -> Result<HashMap<String, Trend>, Problem> {
    let rows = client
        .query(
            &format!(
                "SELECT event_id,
                        (array_agg(last_attendees ORDER BY bucket))[1] AS first,
                        (array_agg(last_attendees ORDER BY bucket DESC))[1] AS last,
                        max(attendees_max) AS peak, min(bucket) AS since
                 FROM {} WHERE event_id = ANY($1) AND bucket >= $2
                 GROUP BY event_id",
                range.resolution.event_table()
            ),
            &[&range.ids, &range.start(range.resolution)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let trend = Trend::new(
                column(r, "first")?,
                column(r, "last")?,
                column(r, "peak")?,
                column(r, "since")?,
            );
            Ok((column(r, "event_id")?, trend))
        })
        .collect()
}

/// One point of the dashboard's attendance chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    pub at: DateTime<Utc>,
    /// Sum over events of each one's last value in the bucket.
    pub total_attendees: i64,
    pub average_attendance_rate: f64,
    pub events: i64,
}

/// Attendance summed over the events, one point per `resolution` bucket.
pub async fn chart(client: &Client, range: Range<'_>) -> Result<Vec<TrendPoint>, Problem> {
    let rows = client
        .query(
            &format!(
                "WITH per_event AS (
                    SELECT DISTINCT ON (event_id, b) event_id,
                           date_trunc($3, bucket, 'UTC') AS b, last_attendees,
                           rate_sum / samples AS rate
                    FROM {} WHERE event_id = ANY($1) AND bucket >= $2
                    ORDER BY event_id, b, bucket DESC)
                 SELECT b AS at, sum(last_attendees)::bigint AS total, avg(rate) AS rate,
                        count(*) AS events
                 FROM per_event GROUP BY b ORDER BY b",
                range.resolution.event_table()
            ),
            &[
                &range.ids,
                &range.start(range.resolution),
                &range.resolution.as_str(),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TrendPoint {
                at: column(r, "at")?,
                total_attendees: column(r, "total")?,
                average_attendance_rate: column(r, "rate")?,
                events: column(r, "events")?,
            })
        })
        .collect()
}

/// One point of an event's recent attendance: its last value in a bucket of the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentPoint {
    pub at: DateTime<Utc>,
    pub attendees: i64,
}

/// Each event's attendance since `since` from the minute series, one point per `step` (its
/// last minute's value), oldest first: the overview's sparklines, a few dozen points each.
pub async fn recent_by_event(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
    step: TimeDelta,
) -> Result<HashMap<String, Vec<RecentPoint>>, Problem> {
    let step = format!("{} seconds", step.num_seconds().max(60));
    let rows = client
        .query(
            "SELECT DISTINCT ON (event_id, b) event_id,
                    date_bin($3::text::interval, bucket, timestamptz '2000-01-01') AS b,
                    last_attendees
             FROM event_series_minute WHERE event_id = ANY($1) AND bucket >= $2
             ORDER BY event_id, b, bucket DESC",
            &[&ids, &since, &step],
        )
        .await?;
    let mut out: HashMap<String, Vec<RecentPoint>> = HashMap::new();
    for r in &rows {
        out.entry(column(r, "event_id")?)
            .or_default()
            .push(RecentPoint {
                at: column(r, "b")?,
                attendees: column(r, "last_attendees")?,
            });
    }
    Ok(out)
}

/// Average attendance rate by hour of day, in each event's own time zone.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HourPattern {
    pub hour_of_day: i32,
    pub average_attendance_rate: f64,
    pub samples: i64,
}

/// The events' attendance rate by local hour of day over the range (hourly series).
pub async fn hour_patterns(client: &Client, range: Range<'_>) -> Result<Vec<HourPattern>, Problem> {
    let rows = client
        .query(
            "SELECT extract(hour FROM (s.bucket AT TIME ZONE 'UTC')
                          + make_interval(mins => coalesce(c.utc_offset_minutes, 0)))::int AS h,
                    sum(s.rate_sum) / sum(s.samples) AS rate, sum(s.samples)::bigint AS samples
             FROM event_series_hour s JOIN event_catalogue c USING (event_id)
             WHERE s.event_id = ANY($1) AND s.bucket >= $2
             GROUP BY h ORDER BY h",
            &[&range.ids, &range.start(Resolution::Hour)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HourPattern {
                hour_of_day: column(r, "h")?,
                average_attendance_rate: column(r, "rate")?,
                samples: column(r, "samples")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Peak {
    pub event_id: String,
    pub attendees: i64,
    pub at: DateTime<Utc>,
}

/// The most attendees any of the events had in one bucket of the range.
pub async fn peak(client: &Client, range: Range<'_>) -> Result<Option<Peak>, Problem> {
    let row = client
        .query_opt(
            &format!(
                "SELECT event_id, attendees_max, bucket FROM {}
                 WHERE event_id = ANY($1) AND bucket >= $2
                 ORDER BY attendees_max DESC, bucket LIMIT 1",
                range.resolution.event_table()
            ),
            &[&range.ids, &range.start(range.resolution)],
        )
        .await?;
    row.map(|r| {
        Ok(Peak {
            event_id: column(&r, "event_id")?,
            attendees: column(&r, "attendees_max")?,
            at: column(&r, "bucket")?,
        })
    })
    .transpose()
}

/// A gate's traffic over the range.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateSummary {
    pub event_id: String,
    pub gate_id: String,
    pub entries: i64,
    pub exits: i64,
    /// The most entries in one bucket of `peakWindow`.
    pub peak_entries: i64,
    /// minute, or hour for ranges beyond the minute series' retention.
    pub peak_window: GateWindow,
}

/// Gate traffic, busiest first. Peaks are per minute while the range fits in the minute
/// series' retention, per hour beyond.
pub async fn gates(client: &Client, range: Range<'_>) -> Result<Vec<GateSummary>, Problem> {
    let (table, window, start) = match range.resolution {
        Resolution::Minute | Resolution::Hour => (
            "gate_series_minute",
            GateWindow::Minute,
            range.start(Resolution::Minute),
        ),
        Resolution::Day => (
            "gate_series_hour",
            GateWindow::Hour,
            range.start(Resolution::Hour),
        ),
    };
    let rows = client
        .query(
            &format!(
                "SELECT event_id, gate_id, sum(entries)::bigint AS entries,
                        sum(exits)::bigint AS exits, max(entries) AS peak
                 FROM {table} WHERE event_id = ANY($1) AND bucket >= $2
                 GROUP BY event_id, gate_id
                 ORDER BY max(entries) DESC, sum(entries) DESC, event_id, gate_id"
            ),
            &[&range.ids, &start],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(GateSummary {
                event_id: column(r, "event_id")?,
                gate_id: column(r, "gate_id")?,
                entries: column(r, "entries")?,
                exits: column(r, "exits")?,
                peak_entries: column(r, "peak")?,
                peak_window: window,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_direction_has_a_dead_band() {
        let t0 = Utc::now();
        assert_eq!(Trend::new(100, 120, 130, t0).direction, Direction::Rising);
        assert_eq!(Trend::new(100, 103, 130, t0).direction, Direction::Steady);
        assert_eq!(Trend::new(100, 80, 130, t0).direction, Direction::Falling);
        assert_eq!(Trend::new(0, 5, 5, t0).direction, Direction::Rising);
        assert_eq!(Trend::new(0, 5, 5, t0).change_pct, None);
        assert_eq!(Trend::new(0, 0, 0, t0).direction, Direction::Steady);
    }
}
