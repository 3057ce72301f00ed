//! Attendance patterns: the seed's Spark query (average attendance rate by event type × day of
//! week × hour of day, with its spread and sample size), on DataFusion, in each event's own
//! time zone, plus the same figures for the period before so a trend shows.
//!
//! A sample is one *event-hour*: an event's mean attendance rate over one clock hour. The hour
//! series holds exactly that (`rate_sum / samples`), and so does the archive once its
//! observations are averaged per hour, so both sources give the same figures; the hour series
//! is always there, the archive keeps what retention deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sql_rows;

/// Where the event-hours come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `event_series_hour` in PostgreSQL.
    Projections,
    /// `archive_normalized`: every normalized observation in the Parquet archive.
    Archive,
}

/// One cell of the pattern: a type, a local weekday (0 = Sunday) and a local hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pattern {
    pub event_type: String,
    /// 0 = Sunday … 6 = Saturday, in the event's own time zone.
    pub day_of_week: i32,
    /// 0 … 23, in the event's own time zone.
    pub hour_of_day: i32,
    pub average_attendance_rate: f64,
    /// Sample standard deviation; none with a single sample.
    pub stddev_attendance_rate: Option<f64>,
    /// Event-hours behind the average.
    pub samples: i64,
    /// Distinct events behind the average.
    pub events: i64,
    /// The same cell over the period of equal length just before.
    pub previous_average_attendance_rate: Option<f64>,
    pub previous_samples: i64,
    pub previous_events: i64,
    /// `average - previous average`, when both exist.
    pub change: Option<f64>,
}

/// The event-hours of `source` in `[from, to)`, as `(event_id, hour_epoch, rate)`.
fn event_hours(source: Source, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let (f, t) = (from.timestamp(), to.timestamp());
    match source {
        Source::Projections => format!(
            "SELECT event_id, CAST(date_part('epoch', bucket) AS BIGINT) AS hour_epoch,
                    rate_sum / CAST(samples AS DOUBLE) AS rate
             FROM event_series_hour
             WHERE samples > 0
               AND CAST(date_part('epoch', bucket) AS BIGINT) >= {f}
               AND CAST(date_part('epoch', bucket) AS BIGINT) < {t}"
        ),
        // `date` is the archive's partition column (UTC day): the filter on it prunes folders
        // before any file is opened.
        Source::Archive => format!(
            "SELECT event_id, hour_epoch, avg(attendance_rate) AS rate
             FROM (SELECT event_id, attendance_rate,
                          CAST(date_part('epoch', observed_at) AS BIGINT) / 3600 * 3600 AS hour_epoch
                   FROM archive_normalized
                   WHERE date >= '{fd}' AND date <= '{td}')
             WHERE hour_epoch >= {f} AND hour_epoch < {t}
             GROUP BY event_id, hour_epoch",
            fd = from.format("%Y-%m-%d"),
            td = to.format("%Y-%m-%d"),
        ),
    }
}

/// The pattern query: every cell of `[from, to)` and of the period of equal length before it.
pub fn sql(source: Source, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let previous = from - (to - from);
    format!(
        "WITH hours AS ({hours}),
         local AS (
            SELECT c.event_type, h.event_id, h.rate,
                   CASE WHEN h.hour_epoch >= {from} THEN 'current' ELSE 'previous' END AS period,
                   to_timestamp_seconds(h.hour_epoch
                       + CAST(COALESCE(c.utc_offset_minutes, 0) AS BIGINT) * 60) AS local_hour
            FROM hours h JOIN event_catalogue c ON c.event_id = h.event_id)
         SELECT event_type, period,
                CAST(date_part('dow', local_hour) AS INT) AS day_of_week,
                CAST(date_part('hour', local_hour) AS INT) AS hour_of_day,
                avg(rate) AS average, stddev(rate) AS stddev,
                count(*) AS samples, count(DISTINCT event_id) AS events
         FROM local
         GROUP BY event_type, period, 3, 4",
        hours = event_hours(source, previous, to),
        from = from.timestamp(),
    )
}

#[derive(Debug, Deserialize)]
struct Cell {
    event_type: String,
    period: String,
    day_of_week: i32,
    hour_of_day: i32,
    average: f64,
    stddev: Option<f64>,
    samples: i64,
    events: i64,
}

/// Runs the pattern query: the cells of `[from, to)`, each with its previous-period figures.
pub async fn compute(
    ctx: &datafusion::prelude::SessionContext,
    source: Source,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<Pattern>> {
    let cells: Vec<Cell> = sql_rows(ctx, &sql(source, from, to)).await?;
    Ok(join_periods(cells))
}

fn join_periods(cells: Vec<Cell>) -> Vec<Pattern> {
    use std::collections::BTreeMap;
    let mut previous: BTreeMap<(String, i32, i32), (f64, i64, i64)> = BTreeMap::new();
    let mut current = Vec::new();
    for c in cells {
        if c.period == "previous" {
            previous.insert(
                (c.event_type, c.day_of_week, c.hour_of_day),
                (c.average, c.samples, c.events),
            );
        } else {
            current.push(c);
        }
    }
    let mut out: Vec<Pattern> = current
        .into_iter()
        .map(|c| {
            let prev = previous.get(&(c.event_type.clone(), c.day_of_week, c.hour_of_day));
            Pattern {
                previous_average_attendance_rate: prev.map(|p| p.0),
                previous_samples: prev.map_or(0, |p| p.1),
                previous_events: prev.map_or(0, |p| p.2),
                change: prev.map(|p| c.average - p.0),
                event_type: c.event_type,
                day_of_week: c.day_of_week,
                hour_of_day: c.hour_of_day,
                average_attendance_rate: c.average,
                stddev_attendance_rate: c.stddev.filter(|s| s.is_finite()),
                samples: c.samples,
                events: c.events,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.event_type, a.day_of_week, a.hour_of_day).cmp(&(
            &b.event_type,
            b.day_of_week,
            b.hour_of_day,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(period: &str, hour: i32, average: f64, samples: i64) -> Cell {
        Cell {
            event_type: "festival".into(),
            period: period.into(),
            day_of_week: 6,
            hour_of_day: hour,
            average,
            stddev: None,
            samples,
            events: 1,
        }
    }

    #[test]
    fn a_cell_is_compared_with_the_same_cell_before() {
        let out = join_periods(vec![
            cell("current", 10, 0.5, 4),
            cell("previous", 10, 0.25, 2),
            cell("current", 11, 0.75, 3),
            cell("previous", 12, 0.9, 1),
        ]);
        assert_eq!(
            out.len(),
            2,
            "a cell only the previous period has is not shown"
        );
        assert_eq!(out[0].change, Some(0.25));
        assert_eq!(out[0].previous_samples, 2);
        assert_eq!(out[1].previous_average_attendance_rate, None);
        assert_eq!(out[1].change, None);
    }
}
