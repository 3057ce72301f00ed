//! Recommendations: concrete actions, each with the numbers that make the case. The scheduled
//! ones here come from the forecasts and the patterns (the history of similar events); the live
//! ones (`super::live`) from the projections' current numbers. Both are one type.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::forecast::Forecast;
use super::outcomes::Outcome;
use super::patterns::Pattern;

/// Something to do about an event, with the numbers that make the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub event_id: String,
    pub kind: Kind,
    pub message: String,
    #[schema(value_type = Object)]
    pub evidence: BTreeMap<String, serde_json::Value>,
}

/// What a recommendation is about. The scheduled insights raise `open-gates`, `capacity`,
/// `under-attendance` and `peak-staffing`; the live rules `capacity`, `gate-imbalance`,
/// `under-attendance`, `critical-alerts` and `stale-data`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
#[schema(as = RecommendationKind)]
pub enum Kind {
    OpenGates,
    Capacity,
    UnderAttendance,
    PeakStaffing,
    GateImbalance,
    CriticalAlerts,
    StaleData,
}

/// Evidence from `(name, value)` pairs.
pub(crate) fn evidence<const N: usize>(
    pairs: [(&str, serde_json::Value); N],
) -> BTreeMap<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn plural(kind: &str, n: usize) -> String {
    if n == 1 {
        kind.to_owned()
    } else {
        format!("{kind}s")
    }
}

/// Local `HH:MM`, a quarter-hour before `at`, rounded down: when to be ready.
fn ready_by(at: DateTime<Utc>, offset: FixedOffset) -> String {
    let local = (at - chrono::Duration::minutes(15)).with_timezone(&offset);
    format!("{:02}:{:02}", local.hour(), local.minute() / 15 * 15)
}

impl Recommendation {
    /// What a partner may see: no other event's id in the evidence.
    pub fn redacted(mut self) -> Self {
        self.evidence.remove("similarEvents");
        self
    }
}

/// `min_events`: pattern cells drawn from fewer events are not quoted (they would show
/// another event's figures).
pub fn compute(
    forecasts: &[Forecast],
    outcomes: &[Outcome],
    patterns: &[Pattern],
    min_events: i64,
) -> Vec<Recommendation> {
    let by_id: BTreeMap<&str, &Outcome> =
        outcomes.iter().map(|o| (o.event_id.as_str(), o)).collect();
    let mut out = Vec::new();
    for f in forecasts {
        let Some(event) = by_id.get(f.event_id.as_str()) else {
            continue;
        };
        let n = f.similar_events.len();
        let similar = format!("the {n} most similar past {}", plural(&f.event_type, n));
        let with_similar = |mut e: BTreeMap<String, serde_json::Value>| {
            e.insert("similarEvents".into(), serde_json::json!(f.similar_events));
            e
        };
        if let (Some(needed), Some(peak), Some(per_gate), Some(at)) = (
            f.gates_needed,
            f.peak_entries_per_minute,
            f.gate_entries_per_minute,
            f.peak_at,
        ) {
            let by = ready_by(at, event.offset());
            let open = f.gates_open.unwrap_or(0);
            if f.gates_open.is_none() || needed > open {
                let message = if f.gates_open.is_some() {
                    format!(
                        "Open {} more gate{} before {by}: expect a peak of {peak:.0} entries/min; \
                         {similar} took {per_gate:.0} entries/min/gate at theirs",
                        needed - open,
                        if needed - open == 1 { "" } else { "s" },
                    )
                } else {
                    format!(
                        "Have {needed} gate{} open before {by}: expect a peak of {peak:.0} \
                         entries/min; {similar} took {per_gate:.0} entries/min/gate at theirs",
                        if needed == 1 { "" } else { "s" },
                    )
                };
                out.push(Recommendation {
                    event_id: f.event_id.clone(),
                    kind: Kind::OpenGates,
                    message,
                    evidence: with_similar(evidence([
                        ("gatesNeeded", needed.into()),
                        ("gatesOpen", serde_json::json!(f.gates_open)),
                        ("expectedPeakEntriesPerMinute", serde_json::json!(peak)),
                        ("gateEntriesPerMinute", serde_json::json!(per_gate)),
                        ("expectedPeakAt", serde_json::json!(at)),
                    ])),
                });
            }
        }
        for risk in &f.risks {
            let (kind, message) = match risk.kind.as_str() {
                "capacity-overflow" => (
                    Kind::Capacity,
                    format!(
                        "Plan for overflow or staggered entry: {}, going by {similar}",
                        risk.message
                    ),
                ),
                _ => (
                    Kind::UnderAttendance,
                    format!(
                        "Send reminders before the start: {}, going by {similar} \
                         (they showed up at {:.0} % on average)",
                        risk.message,
                        f.show_up_rate.expected * 100.0
                    ),
                ),
            };
            out.push(Recommendation {
                event_id: f.event_id.clone(),
                kind,
                message,
                evidence: with_similar(evidence([
                    ("likelihood", risk.likelihood.clone().into()),
                    ("capacity", serde_json::json!(event.capacity)),
                    ("expectedPeakAttendees", serde_json::json!(f.peak_attendees)),
                    ("expectedShowUpRate", serde_json::json!(f.show_up_rate)),
                ])),
            });
        }
        // The busiest hour this type has on the event's local weekday.
        if let Some((weekday, _)) = event.local_start()
            && let Some(p) = patterns
                .iter()
                .filter(|p| {
                    p.event_type == f.event_type
                        && p.day_of_week == weekday as i32
                        && p.events >= min_events
                })
                .max_by(|a, b| {
                    a.average_attendance_rate
                        .total_cmp(&b.average_attendance_rate)
                })
        {
            out.push(Recommendation {
                event_id: f.event_id.clone(),
                kind: Kind::PeakStaffing,
                message: format!(
                    "Staff fully for {:02}:00-{:02}:00: on {}s, {}s are fullest then \
                     ({:.0} % of registrations on average over {} event-hours)",
                    p.hour_of_day,
                    (p.hour_of_day + 1) % 24,
                    DAYS[weekday as usize % 7],
                    f.event_type,
                    p.average_attendance_rate * 100.0,
                    p.samples
                ),
                evidence: evidence([
                    ("dayOfWeek", p.day_of_week.into()),
                    ("hourOfDay", p.hour_of_day.into()),
                    (
                        "averageAttendanceRate",
                        serde_json::json!(p.average_attendance_rate),
                    ),
                    ("samples", p.samples.into()),
                    ("events", p.events.into()),
                ]),
            });
        }
    }
    out
}
