//! The live recommendation rules: what the dashboard and the per-event insights suggest from
//! the projections' current numbers (the scheduled ones, from history, are `super::recommend`'s).
//! Pure functions of the numbers, so each rule is tested without a database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::recommend::{Kind, Recommendation, evidence};

/// `[insights.live]`: the thresholds of the live rules. Capacity has none here: it follows the
/// alerts processor's occupancy alert (`[processors.alerts] occupancy_warning`), so the two
/// never disagree about when an event is full.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveRules {
    /// A live event whose attendance rate is below this...
    pub under_attendance_rate: f64,
    /// ...this long after its start gets an `under-attendance` recommendation.
    #[serde(with = "humantime_serde")]
    pub under_attendance_after: Duration,
    /// A gate whose peak is at least this many times the other gates' mean peak...
    pub gate_imbalance_ratio: f64,
    /// ...and at least this many entries in one bucket gets a `gate-imbalance` recommendation.
    pub gate_imbalance_min_entries: i64,
}

impl Default for LiveRules {
    fn default() -> Self {
        Self {
            under_attendance_rate: 0.5,
            under_attendance_after: Duration::from_secs(3600),
            gate_imbalance_ratio: 2.0,
            gate_imbalance_min_entries: 10,
        }
    }
}

impl LiveRules {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.under_attendance_rate) {
            return Err("insights.live.under_attendance_rate must be between 0 and 1".into());
        }
        if self.gate_imbalance_ratio < 1.0 {
            return Err("insights.live.gate_imbalance_ratio must be at least 1".into());
        }
        Ok(())
    }
}

/// An event as the live rules see it.
#[derive(Debug, Clone)]
pub struct LiveEvent<'a> {
    pub event_id: &'a str,
    pub name: &'a str,
    /// Live or degraded: people are expected in.
    pub running: bool,
    /// No fresh numbers (older than the API's `stale_after`).
    pub stale: bool,
    pub starts_at: Option<DateTime<Utc>>,
    /// Absent before the first snapshot.
    pub numbers: Option<Numbers>,
    /// An occupancy alert is active.
    pub occupancy_alert: bool,
    /// Critical alerts active.
    pub critical_alerts: usize,
}

/// An event's latest numbers.
#[derive(Debug, Clone, Copy)]
pub struct Numbers {
    pub current_attendees: i64,
    pub total_registered: i64,
    pub attendance_rate: f64,
    pub capacity: Option<i64>,
    pub observed_at: DateTime<Utc>,
}

/// A gate's busiest bucket over the range.
#[derive(Debug, Clone, Copy)]
pub struct GatePeak<'a> {
    pub event_id: &'a str,
    pub gate_id: &'a str,
    pub peak_entries: i64,
    /// The bucket width, `minute` or `hour`.
    pub window: &'a str,
}

/// The live recommendations of `events`; `gates` busiest first.
pub fn recommend(
    rules: &LiveRules,
    events: &[LiveEvent<'_>],
    gates: &[GatePeak<'_>],
    now: DateTime<Utc>,
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for e in events {
        let mut push = |kind, message, evidence| {
            out.push(Recommendation {
                event_id: e.event_id.to_owned(),
                kind,
                message,
                evidence,
            })
        };
        if e.stale {
            push(
                Kind::StaleData,
                format!(
                    "{}: no fresh numbers; check the service's health and the connector",
                    e.name
                ),
                evidence([("observedAt", json!(e.numbers.map(|n| n.observed_at)))]),
            );
        }
        if let Some(n) = &e.numbers {
            if let Some(r) = capacity(e, n) {
                push(Kind::Capacity, r.0, r.1);
            }
            if let Some(r) = under_attendance(rules, e, n, now) {
                push(Kind::UnderAttendance, r.0, r.1);
            }
            let mine: Vec<&GatePeak> = gates.iter().filter(|g| g.event_id == e.event_id).collect();
            if let Some(r) = gate_imbalance(rules, e, &mine) {
                push(Kind::GateImbalance, r.0, r.1);
            }
            if e.critical_alerts > 0 {
                push(
                    Kind::CriticalAlerts,
                    format!(
                        "{}: {} critical alert(s) active; act on them first",
                        e.name, e.critical_alerts
                    ),
                    evidence([("activeCriticalAlerts", json!(e.critical_alerts))]),
                );
            }
        }
    }
    out
}

type Case = (
    String,
    std::collections::BTreeMap<String, serde_json::Value>,
);

fn capacity(e: &LiveEvent<'_>, n: &Numbers) -> Option<Case> {
    let cap = n.capacity.filter(|c| *c > 0)?;
    if !e.occupancy_alert {
        return None;
    }
    let occ = n.current_attendees as f64 / cap as f64;
    Some((
        format!(
            "{}: {} of {} places taken ({:.0} %); prepare overflow space or pause entry",
            e.name,
            n.current_attendees,
            cap,
            occ * 100.0
        ),
        evidence([
            ("currentAttendees", json!(n.current_attendees)),
            ("capacity", json!(cap)),
            ("occupancy", json!(occ)),
        ]),
    ))
}

fn under_attendance(
    rules: &LiveRules,
    e: &LiveEvent<'_>,
    n: &Numbers,
    now: DateTime<Utc>,
) -> Option<Case> {
    let after = chrono::Duration::from_std(rules.under_attendance_after).ok()?;
    let started_long_ago = e.starts_at.is_some_and(|s| now - s > after);
    let low = n.total_registered > 0 && n.attendance_rate < rules.under_attendance_rate;
    (e.running && started_long_ago && low).then(|| {
        (
            format!(
                "{}: only {:.0} % of those registered are in more than {} after the start; \
                 remind the rest",
                e.name,
                n.attendance_rate * 100.0,
                spoken(rules.under_attendance_after)
            ),
            evidence([
                ("attendanceRate", json!(n.attendance_rate)),
                ("totalRegistered", json!(n.total_registered)),
                ("startsAt", json!(e.starts_at)),
            ]),
        )
    })
}

/// `an hour`, `2 hours`, `90 minutes`: a duration as a message says it.
fn spoken(d: Duration) -> String {
    match d.as_secs() {
        3600 => "an hour".into(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

fn gate_imbalance(rules: &LiveRules, e: &LiveEvent<'_>, gates: &[&GatePeak<'_>]) -> Option<Case> {
    let (busiest, others) = gates.split_first()?;
    if others.is_empty() {
        return None;
    }
    let others_mean =
        others.iter().map(|g| g.peak_entries as f64).sum::<f64>() / others.len() as f64;
    let imbalanced = busiest.peak_entries >= rules.gate_imbalance_min_entries
        && busiest.peak_entries as f64 >= rules.gate_imbalance_ratio * others_mean;
    imbalanced.then(|| {
        (
            format!(
                "{}: gate {} peaked at {} entries per {}, {:.1}x the other gates' average; \
                 open more lanes there or direct arrivals elsewhere",
                e.name,
                busiest.gate_id,
                busiest.peak_entries,
                busiest.window,
                busiest.peak_entries as f64 / others_mean.max(1.0)
            ),
            evidence([
                ("gateId", json!(busiest.gate_id)),
                ("peakEntries", json!(busiest.peak_entries)),
                ("peakWindow", json!(busiest.window)),
                ("otherGatesMeanPeak", json!(others_mean)),
            ]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(
        id: &'a str,
        current: i64,
        registered: i64,
        capacity: Option<i64>,
        occupancy_alert: bool,
    ) -> LiveEvent<'a> {
        LiveEvent {
            event_id: id,
            name: id,
            running: true,
            stale: false,
            starts_at: Some(Utc::now() - chrono::Duration::hours(3)),
            numbers: Some(Numbers {
                current_attendees: current,
                total_registered: registered,
                attendance_rate: current as f64 / registered as f64,
                capacity,
                observed_at: Utc::now(),
            }),
            occupancy_alert,
            critical_alerts: 0,
        }
    }

    fn gate<'a>(event: &'a str, gate: &'a str, peak: i64) -> GatePeak<'a> {
        GatePeak {
            event_id: event,
            gate_id: gate,
            peak_entries: peak,
            window: "minute",
        }
    }

    #[test]
    fn recommendations_fire_on_their_evidence_only() {
        let events = [
            event("full", 950, 1000, Some(1000), true),
            event("calm", 700, 1000, Some(2000), false),
            event("empty", 100, 1000, None, false),
        ];
        let gates = [
            gate("calm", "A", 40),
            gate("calm", "B", 10),
            gate("calm", "C", 8),
            gate("full", "A", 12),
            gate("full", "B", 11),
        ];
        let kinds: Vec<(String, Kind)> =
            recommend(&LiveRules::default(), &events, &gates, Utc::now())
                .into_iter()
                .map(|r| (r.event_id, r.kind))
                .collect();
        assert_eq!(
            kinds,
            [
                ("full".into(), Kind::Capacity),
                ("calm".into(), Kind::GateImbalance),
                ("empty".into(), Kind::UnderAttendance),
            ]
        );
    }

    #[test]
    fn thresholds_come_from_the_rules() {
        let events = [event("half", 450, 1000, None, false)];
        let strict = LiveRules {
            under_attendance_rate: 0.4,
            ..Default::default()
        };
        assert!(recommend(&strict, &events, &[], Utc::now()).is_empty());
        let kinds: Vec<Kind> = recommend(&LiveRules::default(), &events, &[], Utc::now())
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, [Kind::UnderAttendance]);
    }

    #[test]
    fn stale_events_are_flagged_even_without_numbers() {
        let mut e = event("old", 0, 1, None, false);
        e.numbers = None;
        e.stale = true;
        let r = recommend(&LiveRules::default(), &[e], &[], Utc::now());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, Kind::StaleData);
    }
}
