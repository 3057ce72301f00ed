//! What the event page is drawn from, as plain functions of the read models' rows: the day it
//! shows, the charts' data (handed to `event.js` as a JSON data island), and each gate's line
//! of the gate table. No I/O here, so each rule is tested on its own.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone, Utc};
use maud::PreEscaped;
use muster_analytics::insights::forecast::Estimate;
use muster_schemas::{AlertKind, GateActivity};
use serde::Serialize;

use crate::read::alerts::Alert;
use crate::read::series::{GatePoint, SeriesPoint};

/// The local day the page shows, `[from, to)`: today in the event's zone, or for an event
/// that has ended, the day it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Day {
    pub fn of(zone: FixedOffset, ends_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        // An end at midnight belongs to the day before it.
        let at = ends_at
            .filter(|e| *e < now)
            .map_or(now, |e| e - TimeDelta::seconds(1));
        let midnight = at
            .with_timezone(&zone)
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists");
        let from = zone
            .from_local_datetime(&midnight)
            .single()
            .expect("a fixed offset maps every local time once")
            .with_timezone(&Utc);
        Self {
            from,
            to: from + TimeDelta::days(1),
        }
    }

    /// Where `at` falls in the day, from 0 to 1 (clamped).
    pub fn share(&self, at: DateTime<Utc>) -> f64 {
        let span = (self.to - self.from).num_seconds() as f64;
        ((at - self.from).num_seconds() as f64 / span).clamp(0.0, 1.0)
    }
}

/// The charts' data, as `event.js` reads it. Times are Unix seconds; `offset` (seconds east of
/// UTC) lets the script draw them on the event's wall clock whatever the browser's zone.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartData {
    pub offset: i32,
    pub from: i64,
    pub to: i64,
    pub attendance: AttendanceData,
    pub gates: GateData,
    pub labels: BTreeMap<&'static str, String>,
}

#[derive(Debug, Default, Serialize)]
pub struct AttendanceData {
    pub t: Vec<i64>,
    /// The last count of each minute.
    pub inside: Vec<i64>,
    pub capacity: Option<i64>,
    pub forecast: Option<Estimate>,
}

/// Every gate's entries and exits on one time axis (minutes any gate counted); a gate that
/// counted nothing in a minute has `null` there.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct GateData {
    pub t: Vec<i64>,
    pub gates: Vec<GateSeries>,
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct GateSeries {
    pub id: String,
    pub entries: Vec<Option<i64>>,
    pub exits: Vec<Option<i64>>,
}

pub fn attendance(
    points: &[SeriesPoint],
    capacity: Option<i64>,
    forecast: Option<Estimate>,
) -> AttendanceData {
    AttendanceData {
        t: points.iter().map(|p| p.bucket.timestamp()).collect(),
        inside: points.iter().map(|p| p.attendees_last).collect(),
        capacity,
        forecast,
    }
}

/// The gates' points (any order) on one axis, gates by id.
pub fn gate_data(points: &[GatePoint]) -> GateData {
    let t: Vec<i64> = points
        .iter()
        .map(|p| p.bucket.timestamp())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index: BTreeMap<i64, usize> = t.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut gates: BTreeMap<&str, GateSeries> = BTreeMap::new();
    for p in points {
        let g = gates.entry(&p.gate_id).or_insert_with(|| GateSeries {
            id: p.gate_id.clone(),
            entries: vec![None; t.len()],
            exits: vec![None; t.len()],
        });
        let i = index[&p.bucket.timestamp()];
        g.entries[i] = Some(p.entries);
        g.exits[i] = Some(p.exits);
    }
    GateData {
        t,
        gates: gates.into_values().collect(),
    }
}

/// `value` as the text of a `<script type="application/json">`: JSON with `<`, `>` and `&`
/// escaped, so no string in it (a gate's name) can close the element.
pub fn island(value: &impl Serialize) -> PreEscaped<String> {
    let json = serde_json::to_string(value).expect("chart data serializes");
    PreEscaped(
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    )
}

/// A gate as the alerts processor and the latest snapshot say it is.
#[derive(Debug, Clone, PartialEq)]
pub enum GateState {
    /// A gate-down alert is active for it.
    Down,
    /// The status the service last reported (`open`, `closed`, …).
    Reported(String),
    /// Counted in the series, absent from the latest snapshot.
    Unknown,
}

/// One line of the gate table.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRow {
    pub gate_id: String,
    pub state: GateState,
    pub entries: i64,
    pub exits: i64,
    /// The most entries in one minute of the day.
    pub peak: i64,
    /// Entries per minute the service last reported.
    pub now: Option<f64>,
    /// The median of the gate's entries per minute over the minutes it let anyone in.
    pub usual: Option<f64>,
    /// A throughput-collapse alert is active for it.
    pub slow: bool,
}

impl GateRow {
    /// now / usual, when both are known and the gate has a usual.
    pub fn against_usual(&self) -> Option<f64> {
        match (self.now, self.usual) {
            (Some(now), Some(usual)) if usual > 0.0 => Some(now / usual),
            _ => None,
        }
    }
}

fn median(mut xs: Vec<i64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable();
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2] as f64
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) as f64 / 2.0
    })
}

/// Every gate of the day's series or the latest snapshot, by id, with the day's totals, its
/// state (an active gate-down alert wins over what the snapshot says) and its throughput now
/// against its usual.
pub fn gate_rows(points: &[GatePoint], now: &[GateActivity], alerts: &[Alert]) -> Vec<GateRow> {
    let active = |kind: AlertKind, gate: &str| {
        alerts
            .iter()
            .any(|a| a.is_active() && a.kind == kind && a.subject.as_deref() == Some(gate))
    };
    let mut minutes: BTreeMap<&str, Vec<&GatePoint>> = BTreeMap::new();
    for p in points {
        minutes.entry(&p.gate_id).or_default().push(p);
    }
    for g in now {
        minutes.entry(&g.gate_id).or_default();
    }
    minutes
        .into_iter()
        .map(|(id, ps)| {
            let reported = now.iter().find(|g| g.gate_id == id);
            let state = if active(AlertKind::GateDown, id) {
                GateState::Down
            } else {
                reported.map_or(GateState::Unknown, |g| {
                    GateState::Reported(g.status.to_ascii_lowercase())
                })
            };
            GateRow {
                gate_id: id.to_owned(),
                state,
                entries: ps.iter().map(|p| p.entries).sum(),
                exits: ps.iter().map(|p| p.exits).sum(),
                peak: ps.iter().map(|p| p.entries).max().unwrap_or(0),
                now: reported.map(|g| g.throughput),
                usual: median(ps.iter().map(|p| p.entries).filter(|e| *e > 0).collect()),
                slow: active(AlertKind::ThroughputCollapse, id),
            }
        })
        .collect()
}

/// An alert's place on the day's timeline: where its bar starts and how wide it is (shares
/// of the day), and how long it lasted or has lasted so far.
pub fn span(day: &Day, alert: &Alert, now: DateTime<Utc>) -> (f64, f64, TimeDelta) {
    let end = alert.resolved_at.unwrap_or(now);
    let (x0, x1) = (day.share(alert.raised_at), day.share(end));
    (x0, x1 - x0, end - alert.raised_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::alerts::AlertState;
    use muster_schemas::Severity;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, 0).unwrap()
    }

    fn gp(gate: &str, t: DateTime<Utc>, entries: i64, exits: i64) -> GatePoint {
        GatePoint {
            gate_id: gate.into(),
            bucket: t,
            entries,
            exits,
        }
    }

    fn alert(kind: AlertKind, subject: &str, active: bool) -> Alert {
        Alert {
            alert_id: format!("{kind:?}{subject}"),
            event_id: "e".into(),
            kind,
            subject: Some(subject.into()),
            severity: Severity::Critical,
            message: "m".into(),
            state: if active {
                AlertState::Active
            } else {
                AlertState::Resolved
            },
            raised_at: at(1, 0),
            resolved_at: (!active).then(|| at(1, 30)),
        }
    }

    #[test]
    fn the_day_is_the_events_local_day() {
        let seoul = FixedOffset::east_opt(9 * 3600).unwrap();
        // 20:00 UTC is 05:00 the next day in Seoul.
        let day = Day::of(seoul, None, at(20, 0));
        assert_eq!(day.from, at(15, 0));
        assert_eq!(day.to, at(15, 0) + TimeDelta::days(1));
        // Ended: the day it ended, an end at local midnight counting for the day before.
        let ended = Day::of(seoul, Some(at(15, 0)), at(20, 0) + TimeDelta::days(3));
        assert_eq!(ended.from, at(15, 0) - TimeDelta::days(1));
        // Not ended yet: today.
        assert_eq!(Day::of(seoul, Some(at(23, 0)), at(20, 0)), day);
        assert_eq!(day.share(at(3, 0) + TimeDelta::days(1)), 0.5);
        assert_eq!(day.share(at(0, 0)), 0.0);
    }

    #[test]
    fn gates_share_one_axis_with_gaps_where_a_gate_counted_nothing() {
        let data = gate_data(&[
            gp("G2", at(9, 1), 4, 1),
            gp("G1", at(9, 0), 3, 0),
            gp("G1", at(9, 1), 5, 2),
        ]);
        assert_eq!(data.t, vec![at(9, 0).timestamp(), at(9, 1).timestamp()]);
        assert_eq!(data.gates[0].id, "G1");
        assert_eq!(data.gates[0].entries, vec![Some(3), Some(5)]);
        assert_eq!(data.gates[1].entries, vec![None, Some(4)]);
        assert_eq!(data.gates[1].exits, vec![None, Some(1)]);
        assert_eq!(gate_data(&[]), GateData::default());
    }

    #[test]
    fn the_data_island_cannot_close_its_script() {
        let data = gate_data(&[gp("</script><b>&", at(9, 0), 1, 0)]);
        let text = island(&data).into_string();
        assert!(!text.contains('<') && !text.contains('&'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["gates"][0]["id"], "</script><b>&");
    }

    #[test]
    fn a_gate_down_alert_wins_and_usual_is_the_median_busy_minute() {
        let points = [
            gp("G1", at(9, 0), 10, 1),
            gp("G1", at(9, 1), 0, 3),
            gp("G1", at(9, 2), 30, 0),
            gp("G1", at(9, 3), 20, 0),
            gp("G2", at(9, 0), 7, 0),
        ];
        let now = [
            GateActivity {
                gate_id: "G1".into(),
                status: "OPEN".into(),
                throughput: 5.0,
            },
            GateActivity {
                gate_id: "G2".into(),
                status: "open".into(),
                throughput: 7.0,
            },
            GateActivity {
                gate_id: "G3".into(),
                status: "closed".into(),
                throughput: 0.0,
            },
        ];
        let alerts = [
            alert(AlertKind::ThroughputCollapse, "G1", true),
            alert(AlertKind::GateDown, "G2", true),
            alert(AlertKind::GateDown, "G1", false),
        ];
        let rows = gate_rows(&points, &now, &alerts);
        assert_eq!(rows.len(), 3);
        let g1 = &rows[0];
        assert_eq!(g1.state, GateState::Reported("open".into()));
        assert_eq!((g1.entries, g1.exits, g1.peak), (60, 4, 30));
        assert_eq!(g1.usual, Some(20.0));
        assert_eq!(g1.against_usual(), Some(0.25));
        assert!(g1.slow);
        assert_eq!(rows[1].state, GateState::Down);
        assert!(!rows[1].slow);
        let g3 = &rows[2];
        assert_eq!(g3.state, GateState::Reported("closed".into()));
        assert_eq!((g3.entries, g3.usual, g3.against_usual()), (0, None, None));
        let unknown = gate_rows(&points[4..], &[], &[]);
        assert_eq!(unknown[0].state, GateState::Unknown);
        assert_eq!(unknown[0].usual, Some(7.0));
    }

    #[test]
    fn an_alerts_bar_runs_to_its_resolution_or_now() {
        let day = Day {
            from: at(0, 0),
            to: at(0, 0) + TimeDelta::days(1),
        };
        let resolved = alert(AlertKind::GateDown, "G1", false);
        let (x, w, d) = span(&day, &resolved, at(12, 0));
        assert!((x - 1.0 / 24.0).abs() < 1e-9 && (w - 0.5 / 24.0).abs() < 1e-9);
        assert_eq!(d, TimeDelta::minutes(30));
        let active = alert(AlertKind::GateDown, "G1", true);
        let (_, w, d) = span(&day, &active, at(3, 0));
        assert!((w - 2.0 / 24.0).abs() < 1e-9);
        assert_eq!(d, TimeDelta::hours(2));
    }
}
