//! What each event came to: registrations, show-ups, its peaks and the gates it used. The
//! history that forecasts, ROI and recommendations stand on, gathered by one DataFusion query
//! over the catalogue, the realtime table and the series.

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::sql_rows;

/// An event and its figures so far (final once it has ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub event_id: String,
    pub event_type: String,
    pub capacity: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub utc_offset_minutes: i32,
    pub ticket_price: Option<f64>,
    pub cost_total: Option<f64>,
    #[serde(default)]
    pub other_income: Option<f64>,
    pub currency: Option<String>,
    pub registered: Option<i64>,
    /// People who came in (the upstream's cumulative check-ins).
    pub checked_in: Option<i64>,
    pub peak_attendees: Option<i64>,
    /// The busiest minute's entries over all gates, and when it was.
    pub peak_entries_per_minute: Option<i64>,
    pub peak_at: Option<DateTime<Utc>>,
    /// The most entries one gate took in one minute.
    pub peak_gate_entries_per_minute: Option<i64>,
    pub gates_used: Option<i64>,
    /// Gates the latest snapshot lists as open.
    pub gates_open: Option<i64>,
}

/// Where an event stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Upcoming,
    Ongoing,
    Ended,
    /// No start time: it cannot be placed.
    Unscheduled,
}

impl Outcome {
    pub fn phase(&self, now: DateTime<Utc>) -> Phase {
        let Some(start) = self.starts_at else {
            return Phase::Unscheduled;
        };
        // Without an end, a day after the start is taken as the end.
        let end = self.ends_at.unwrap_or(start + Duration::days(1));
        if now < start {
            Phase::Upcoming
        } else if now < end {
            Phase::Ongoing
        } else {
            Phase::Ended
        }
    }

    /// Checked-in / registered, when both are known.
    pub fn show_up_rate(&self) -> Option<f64> {
        match (self.checked_in, self.registered) {
            (Some(c), Some(r)) if r > 0 => Some(c as f64 / r as f64),
            _ => None,
        }
    }

    pub fn offset(&self) -> FixedOffset {
        FixedOffset::east_opt(self.utc_offset_minutes * 60)
            .unwrap_or(FixedOffset::east_opt(0).unwrap())
    }

    /// The start's local weekday (0 = Sunday) and hour.
    pub fn local_start(&self) -> Option<(u32, u32)> {
        let local = self
            .offset()
            .from_utc_datetime(&self.starts_at?.naive_utc());
        Some((local.weekday().num_days_from_sunday(), local.hour()))
    }

    /// The peak's distance from the start, in minutes.
    pub fn peak_offset_minutes(&self) -> Option<i64> {
        Some((self.peak_at? - self.starts_at?).num_minutes())
    }
}

const SQL: &str = "
    WITH hours AS (
        SELECT event_id, max(attendees_max) AS peak_attendees, max(registered_max) AS registered_max
        FROM event_series_hour GROUP BY event_id),
    minutes AS (
        SELECT event_id, CAST(date_part('epoch', bucket) AS BIGINT) AS at, sum(entries) AS entries
        FROM gate_series_minute GROUP BY event_id, 2),
    peaks AS (
        SELECT event_id, max(entries) AS peak_entries,
               first_value(at ORDER BY entries DESC, at ASC) AS peak_epoch
        FROM minutes WHERE entries > 0 GROUP BY event_id),
    gates AS (
        SELECT event_id, count(DISTINCT gate_id) AS gates_used, max(entries) AS peak_gate_entries
        FROM gate_series_minute WHERE entries > 0 GROUP BY event_id)
    SELECT c.event_id, c.event_type, c.capacity,
           CAST(date_part('epoch', c.starts_at) AS BIGINT) AS starts,
           CAST(date_part('epoch', c.ends_at) AS BIGINT) AS ends,
           c.utc_offset_minutes, c.ticket_price, c.cost_total, c.other_income, c.currency,
           r.total_registered, r.checked_in, r.gate_activity,
           h.peak_attendees, h.registered_max,
           p.peak_entries, p.peak_epoch, g.gates_used, g.peak_gate_entries
    FROM event_catalogue c
    LEFT JOIN event_realtime r ON r.event_id = c.event_id
    LEFT JOIN hours h ON h.event_id = c.event_id
    LEFT JOIN peaks p ON p.event_id = c.event_id
    LEFT JOIN gates g ON g.event_id = c.event_id
    WHERE NOT c.removed";

#[derive(Debug, Deserialize)]
struct Row {
    event_id: String,
    event_type: String,
    capacity: Option<i64>,
    starts: Option<i64>,
    ends: Option<i64>,
    utc_offset_minutes: Option<i32>,
    ticket_price: Option<f64>,
    cost_total: Option<f64>,
    other_income: Option<f64>,
    currency: Option<String>,
    total_registered: Option<i64>,
    checked_in: Option<i64>,
    gate_activity: Option<String>,
    peak_attendees: Option<i64>,
    registered_max: Option<i64>,
    peak_entries: Option<i64>,
    peak_epoch: Option<i64>,
    gates_used: Option<i64>,
    peak_gate_entries: Option<i64>,
}

fn at(secs: Option<i64>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs?, 0)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Gate {
    status: String,
}

/// Every event in the catalogue with what the projections know of it.
pub async fn compute(ctx: &datafusion::prelude::SessionContext) -> anyhow::Result<Vec<Outcome>> {
    let rows: Vec<Row> = sql_rows(ctx, SQL).await?;
    Ok(rows
        .into_iter()
        .map(|r| Outcome {
            gates_open: r
                .gate_activity
                .as_deref()
                .and_then(|g| serde_json::from_str::<Vec<Gate>>(g).ok())
                // No gates listed yet (an upcoming event): unknown, not none open.
                .filter(|g| !g.is_empty())
                .map(|g| {
                    g.iter()
                        .filter(|g| g.status.eq_ignore_ascii_case("open"))
                        .count() as i64
                }),
            event_id: r.event_id,
            event_type: r.event_type,
            capacity: r.capacity,
            starts_at: at(r.starts),
            ends_at: at(r.ends),
            utc_offset_minutes: r.utc_offset_minutes.unwrap_or(0),
            ticket_price: r.ticket_price,
            cost_total: r.cost_total,
            other_income: r.other_income,
            currency: r.currency,
            registered: r.total_registered.or(r.registered_max),
            checked_in: r.checked_in,
            peak_attendees: r.peak_attendees,
            peak_entries_per_minute: r.peak_entries,
            peak_at: at(r.peak_epoch),
            peak_gate_entries_per_minute: r.peak_gate_entries,
            gates_used: r.gates_used,
        })
        .collect())
}

/// Fills what the series no longer hold (minute buckets past retention) from earlier runs'
/// outcomes: the peak and gate figures of a past event are kept once seen.
pub fn merge_known(outcomes: &mut [Outcome], known: &[Outcome]) {
    let known: std::collections::HashMap<&str, &Outcome> =
        known.iter().map(|k| (k.event_id.as_str(), k)).collect();
    for o in outcomes {
        let Some(k) = known.get(o.event_id.as_str()) else {
            continue;
        };
        // Retention deletes minute buckets oldest first, so what the series hold of a past
        // event can only shrink: the larger figure is the truer one.
        if k.peak_entries_per_minute > o.peak_entries_per_minute {
            o.peak_entries_per_minute = k.peak_entries_per_minute;
            o.peak_at = k.peak_at;
        }
        o.peak_gate_entries_per_minute = o
            .peak_gate_entries_per_minute
            .max(k.peak_gate_entries_per_minute);
        o.gates_used = o.gates_used.max(k.gates_used);
        o.peak_attendees = o.peak_attendees.max(k.peak_attendees);
        o.checked_in = o.checked_in.or(k.checked_in);
        o.registered = o.registered.or(k.registered);
    }
}
