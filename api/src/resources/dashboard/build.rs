//! The parts every dashboard answer is built from: the summary over the events, and the
//! insights (patterns, performance, live and scheduled recommendations, forecasts, ROI).

use std::collections::HashMap;

use chrono::Utc;
use muster_analytics::insights::live::{self, GatePeak, LiveEvent, LiveRules, Numbers};
use muster_analytics::insights::tables as store;
use muster_schemas::{AlertKind, Severity};

use super::view::{Insights, Performance, Summary};
use crate::auth::Viewer;
use crate::problem::Problem;
use crate::read::Client;
use crate::read::alerts::{self, Alert};
use crate::read::events::{Event, Status};
use crate::read::series::{self, GateSummary, Range, Trend};

pub fn summary<'a>(events: impl IntoIterator<Item = &'a Event>, alerts: &[Alert]) -> Summary {
    let mut s = Summary::default();
    let mut rates = Vec::new();
    for e in events {
        s.total_events += 1;
        if let Some(r) = &e.realtime {
            s.total_registered += r.total_registered;
            s.total_attendees += r.current_attendees;
            rates.push(r.attendance_rate);
        }
    }
    s.average_attendance_rate = mean(&rates);
    s.active_alerts = alerts.iter().filter(|a| a.is_active()).count() as i64;
    s
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// The events as the live rules see them.
fn live_events<'a>(events: &'a [Event], alerts: &[Alert]) -> Vec<LiveEvent<'a>> {
    events
        .iter()
        .map(|e| {
            let active = || {
                alerts
                    .iter()
                    .filter(move |a| a.event_id == e.event_id && a.is_active())
            };
            LiveEvent {
                event_id: &e.event_id,
                name: &e.name,
                running: matches!(e.status, Status::Live | Status::Degraded),
                stale: e.status == Status::Stale,
                starts_at: e.starts_at,
                numbers: e.realtime.as_ref().map(|r| Numbers {
                    current_attendees: r.current_attendees,
                    total_registered: r.total_registered,
                    attendance_rate: r.attendance_rate,
                    capacity: e.capacity,
                    observed_at: r.observed_at,
                }),
                occupancy_alert: active().any(|a| a.kind == AlertKind::Occupancy),
                critical_alerts: active()
                    .filter(|a| a.severity == Severity::Critical)
                    .count(),
            }
        })
        .collect()
}

/// What one request shows: its events, with their alerts, gates and trends over its range.
pub struct Shown<'a> {
    pub events: Vec<Event>,
    pub alerts: Vec<Alert>,
    pub gates: Vec<GateSummary>,
    pub trends: HashMap<String, Trend>,
    pub range: Range<'a>,
}

impl<'a> Shown<'a> {
    /// `events` with what the projections hold of them over `range` (whose ids are theirs).
    pub async fn load(db: &Client, events: Vec<Event>, range: Range<'a>) -> Result<Self, Problem> {
        // Pipelined on the one connection: the answer waits for the slowest, not the sum.
        let (alerts, gates, trends) = tokio::try_join!(
            alerts::active_or_since(db, range.ids, range.since),
            series::gates(db, range),
            series::trends(db, range),
        )?;
        Ok(Self {
            alerts,
            gates,
            trends,
            events,
            range,
        })
    }
}

/// The insights of `shown`; behaviour only for one event's insights. A partner never reads
/// another event's id, not even as a forecast's or a recommendation's evidence.
pub async fn insights(
    db: &Client,
    shown: &Shown<'_>,
    rules: &LiveRules,
    with_behaviour: bool,
    viewer: &Viewer,
) -> Result<Insights, Problem> {
    let partner = matches!(viewer, Viewer::Partner(_));
    let ids = shown.range.ids;
    let pg: &tokio_postgres::Client = db;
    let gates: Vec<GatePeak> = shown
        .gates
        .iter()
        .map(|g| GatePeak {
            event_id: &g.event_id,
            gate_id: &g.gate_id,
            peak_entries: g.peak_entries,
            window: g.peak_window.as_str(),
        })
        .collect();
    let live = live_events(&shown.events, &shown.alerts);
    let mut recommendations = live::recommend(rules, &live, &gates, Utc::now());
    let behaviour = async {
        if with_behaviour {
            store::behaviour(pg, ids).await
        } else {
            Ok(Vec::new())
        }
    };
    // Pipelined on the one connection, as in `Shown::load`.
    let (stored, behaviour, attendance_patterns, peak_attendees, forecasts, roi, computed_at) = tokio::try_join!(
        async { Ok::<_, Problem>(store::recommendations(pg, Some(ids)).await?) },
        async { Ok::<_, Problem>(behaviour.await?) },
        series::hour_patterns(db, shown.range),
        series::peak(db, shown.range),
        async { Ok::<_, Problem>(store::forecasts(pg, Some(ids)).await?) },
        async { Ok::<_, Problem>(store::roi(pg, Some(ids)).await?) },
        crate::resources::insights::computed_at(db),
    )?;
    recommendations.extend(
        stored
            .into_iter()
            .map(|r| if partner { r.redacted() } else { r }),
    );
    let occupancies: Vec<f64> = shown.events.iter().filter_map(Event::occupancy).collect();
    Ok(Insights {
        attendance_patterns,
        performance_metrics: Performance {
            peak_attendees,
            entries: shown.gates.iter().map(|g| g.entries).sum(),
            exits: shown.gates.iter().map(|g| g.exits).sum(),
            busiest_gate: shown.gates.first().cloned(),
            average_occupancy: (!occupancies.is_empty()).then(|| mean(&occupancies)),
        },
        recommendations,
        forecasts: forecasts
            .into_iter()
            .map(|f| if partner { f.redacted() } else { f })
            .collect(),
        roi,
        behaviour,
        computed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::events::Realtime;

    fn event(id: &str, current: i64, registered: Option<i64>) -> Event {
        Event {
            event_id: id.into(),
            name: id.into(),
            event_type: "conference".into(),
            venue: None,
            capacity: None,
            starts_at: None,
            ends_at: None,
            utc_offset_minutes: None,
            status: Status::Live,
            realtime: registered.map(|registered| Realtime {
                status: Status::Live,
                total_registered: registered,
                current_attendees: current,
                attendance_rate: current as f64 / registered as f64,
                observed_at: Utc::now(),
                fetched_at: Utc::now(),
            }),
            matched: None,
        }
    }

    #[test]
    fn summary_leaves_events_without_numbers_out_of_the_mean() {
        let events = [
            event("a", 50, Some(100)),
            event("b", 10, Some(100)),
            event("p", 0, None),
        ];
        let s = summary(&events, &[]);
        assert_eq!(s.total_events, 3);
        assert_eq!(s.total_attendees, 60);
        assert!((s.average_attendance_rate - 0.3).abs() < 1e-12);
    }
}
