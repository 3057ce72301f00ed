//! Alerts: raised when a condition starts, resolved when it ends, with one stable id for both.
//!
//! The rules are a pure function of an event's [`AlertState`] and one input record, so they are
//! tested here without Kafka; [`processor`] keeps the state per event and persists it.

mod processor;

pub use processor::Alerts;

use std::collections::BTreeMap;

use muster_schemas::{
    ActiveAlert, Alert, AlertAction, AlertKind, AlertState, GateBaseline, Health,
    NormalizedMetrics, ServiceHealth, Severity, SourceOffset,
};
use serde::{Deserialize, Serialize};

/// `[processors.alerts]`: when conditions count as alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// Occupancy (current attendees / capacity) at or above this raises a warning...
    pub occupancy_warning: f64,
    /// ...and at or above this, a critical alert.
    pub occupancy_critical: f64,
    /// An occupancy alert ends (or steps down) only once occupancy is this far below its
    /// threshold, so a crowd hovering at 90 % does not raise and resolve every minute.
    pub occupancy_hysteresis: f64,
    /// An open gate whose throughput falls below this share of its usual throughput has
    /// collapsed...
    pub collapse_ratio: f64,
    /// ...and recovers once it is back above this share (hysteresis, so a gate hovering at the
    /// threshold does not flap).
    pub recover_ratio: f64,
    /// Below this usual throughput (per minute) a gate is too quiet to judge.
    pub min_baseline: f64,
    /// Weight of the newest observation in the usual throughput (exponential smoothing).
    pub smoothing: f64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            occupancy_warning: 0.9,
            occupancy_critical: 1.0,
            occupancy_hysteresis: 0.05,
            collapse_ratio: 0.2,
            recover_ratio: 0.5,
            min_baseline: 5.0,
            smoothing: 0.3,
        }
    }
}

/// A condition that holds now; it becomes an alert unless the same one is already active.
#[derive(Debug, Clone, PartialEq)]
struct Condition {
    kind: AlertKind,
    subject: Option<String>,
    severity: Severity,
    message: String,
}

/// Gate statuses that mean a gate is out of service (as the normalizer's `degraded` status).
const DOWN: [&str; 4] = ["down", "error", "failed", "offline"];

fn same_condition(a: &ActiveAlert, kind: AlertKind, subject: &Option<String>) -> bool {
    a.kind == kind && &a.subject == subject
}

fn alert_id(event_id: &str, kind: AlertKind, subject: &Option<String>, raised_at: i64) -> String {
    match subject {
        Some(s) => format!("{event_id}:{kind}:{s}@{raised_at}"),
        None => format!("{event_id}:{kind}@{raised_at}"),
    }
}

impl AlertRules {
    /// Applies a normalized record. Records older than the newest one applied are ignored: the
    /// state already reflects a later picture of the event.
    pub fn on_metrics(&self, state: &mut AlertState, m: &NormalizedMetrics) -> Vec<Alert> {
        if state.last_metrics_at.is_some_and(|last| m.timestamp < last) {
            return Vec::new();
        }
        state.last_metrics_at = Some(m.timestamp);
        let mut now = Vec::new();
        if let Some(capacity) = m.capacity.filter(|c| *c > 0) {
            let share = m.current_attendees as f64 / capacity as f64;
            let active = state
                .active
                .iter()
                .find(|a| a.kind == AlertKind::Occupancy)
                .map(|a| a.severity);
            // A threshold is lowered by the hysteresis while its alert is the active one.
            let threshold = |t: f64, s: Severity| {
                if active.is_some_and(|a| a >= s) {
                    t - self.occupancy_hysteresis
                } else {
                    t
                }
            };
            let severity = if share >= threshold(self.occupancy_critical, Severity::Critical) {
                Some(Severity::Critical)
            } else if share >= threshold(self.occupancy_warning, Severity::Warning) {
                Some(Severity::Warning)
            } else {
                None
            };
            if let Some(severity) = severity {
                now.push(Condition {
                    kind: AlertKind::Occupancy,
                    subject: None,
                    severity,
                    message: format!(
                        "{} attendees, {:.0}% of capacity {capacity}",
                        m.current_attendees,
                        share * 100.0
                    ),
                });
            }
        }
        let mut baselines: BTreeMap<String, f64> = state
            .gate_baselines
            .drain(..)
            .map(|b| (b.gate_id, b.throughput))
            .collect();
        for g in &m.gate_activity {
            let status = g.status.to_ascii_lowercase();
            let subject = Some(g.gate_id.clone());
            if DOWN.contains(&status.as_str()) {
                now.push(Condition {
                    kind: AlertKind::GateDown,
                    subject,
                    severity: Severity::Critical,
                    message: format!("gate {} is {}", g.gate_id, g.status),
                });
                continue;
            }
            if status != "open" {
                continue;
            }
            let collapsed = state
                .active
                .iter()
                .any(|a| same_condition(a, AlertKind::ThroughputCollapse, &subject));
            match baselines.get(&g.gate_id).copied() {
                Some(base) if base >= self.min_baseline => {
                    let threshold = if collapsed {
                        self.recover_ratio
                    } else {
                        self.collapse_ratio
                    };
                    if g.throughput < threshold * base {
                        now.push(Condition {
                            kind: AlertKind::ThroughputCollapse,
                            subject,
                            severity: Severity::Warning,
                            message: format!(
                                "gate {} lets {:.1}/min through, usually {base:.1}/min",
                                g.gate_id, g.throughput
                            ),
                        });
                        // The usual throughput stays frozen while the gate is collapsed.
                        continue;
                    }
                    let smoothed = base + self.smoothing * (g.throughput - base);
                    baselines.insert(g.gate_id.clone(), smoothed);
                }
                Some(base) => {
                    let smoothed = base + self.smoothing * (g.throughput - base);
                    baselines.insert(g.gate_id.clone(), smoothed);
                }
                None => {
                    baselines.insert(g.gate_id.clone(), g.throughput);
                }
            }
        }
        state.gate_baselines = baselines
            .into_iter()
            .map(|(gate_id, throughput)| GateBaseline {
                gate_id,
                throughput,
            })
            .collect();
        for a in &m.alerts {
            now.push(Condition {
                kind: AlertKind::Upstream,
                subject: Some(a.id.clone()),
                severity: Severity::parse_lenient(&a.severity),
                message: a.message.clone(),
            });
        }
        // Every kind a snapshot decides; service health comes from its own topic.
        let decided = |k: AlertKind| k != AlertKind::ServiceDown;
        reconcile(state, now, decided, m.timestamp, &m.source)
    }

    /// Applies a service health transition: `down` raises, `healthy` resolves, and `degraded`
    /// (retries still running) changes nothing.
    pub fn on_health(
        &self,
        state: &mut AlertState,
        h: &ServiceHealth,
        source: &SourceOffset,
    ) -> Vec<Alert> {
        let subject = Some(h.service_name.clone());
        let now = match h.current {
            Health::Down => vec![Condition {
                kind: AlertKind::ServiceDown,
                subject: subject.clone(),
                severity: Severity::Critical,
                message: format!("service {} is down: {}", h.service_name, h.reason),
            }],
            Health::Healthy => Vec::new(),
            Health::Degraded => return Vec::new(),
        };
        let decided = |k: AlertKind| k == AlertKind::ServiceDown;
        let mut out = Vec::new();
        // Only this service's alert is decided by this record, not other services'.
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut state.active)
            .into_iter()
            .partition(|a| decided(a.kind) && a.subject == subject);
        state.active = mine;
        out.extend(reconcile(state, now, decided, h.at, source));
        state.active.extend(others);
        out
    }
}

/// Raises the conditions that are new, resolves the active alerts (of the kinds this input
/// decides) that no longer hold. A change of severity is a resolve and a new raise.
fn reconcile(
    state: &mut AlertState,
    now: Vec<Condition>,
    decided: impl Fn(AlertKind) -> bool,
    at: i64,
    source: &SourceOffset,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let event_id = state.event_id.clone();
    let mut kept = Vec::with_capacity(state.active.len());
    for a in std::mem::take(&mut state.active) {
        let holds = !decided(a.kind)
            || now
                .iter()
                .any(|c| same_condition(&a, c.kind, &c.subject) && c.severity == a.severity);
        if holds {
            kept.push(a);
        } else {
            out.push(Alert {
                alert_id: a.alert_id,
                event_id: event_id.clone(),
                kind: a.kind,
                subject: a.subject,
                action: AlertAction::Resolved,
                severity: a.severity,
                message: a.message,
                raised_at: a.raised_at,
                at,
                duration_ms: Some((at - a.raised_at).max(0)),
                source: source.clone(),
            });
        }
    }
    state.active = kept;
    for c in now {
        if state
            .active
            .iter()
            .any(|a| same_condition(a, c.kind, &c.subject))
        {
            continue;
        }
        let id = alert_id(&event_id, c.kind, &c.subject, at);
        out.push(Alert {
            alert_id: id.clone(),
            event_id: event_id.clone(),
            kind: c.kind,
            subject: c.subject.clone(),
            action: AlertAction::Raised,
            severity: c.severity,
            message: c.message.clone(),
            raised_at: at,
            at,
            duration_ms: None,
            source: source.clone(),
        });
        state.active.push(ActiveAlert {
            alert_id: id,
            kind: c.kind,
            subject: c.subject,
            severity: c.severity,
            message: c.message,
            raised_at: at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_schemas::{GateActivity, UpstreamAlert};

    fn src(offset: i64) -> SourceOffset {
        SourceOffset {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    fn metrics(at: i64, current: i64, gates: &[(&str, &str, f64)]) -> NormalizedMetrics {
        NormalizedMetrics {
            gate_activity: gates
                .iter()
                .map(|(id, status, t)| GateActivity {
                    gate_id: (*id).into(),
                    status: (*status).into(),
                    throughput: *t,
                })
                .collect(),
            source: src(at),
            capacity: Some(1000),
            ..NormalizedMetrics::live("ev", at, 1000, current, at)
        }
    }

    fn state() -> AlertState {
        AlertState {
            event_id: "ev".into(),
            ..Default::default()
        }
    }

    /// Feeds `gates` at each of `times`: none of it may raise or resolve anything.
    fn quiet(
        rules: &AlertRules,
        s: &mut AlertState,
        times: impl IntoIterator<Item = i64>,
        gates: &[(&str, &str, f64)],
    ) {
        for t in times {
            let out = rules.on_metrics(s, &metrics(t, 0, gates));
            assert!(out.is_empty(), "at {t}: {out:?}");
        }
    }

    fn actions(alerts: &[Alert]) -> Vec<(AlertAction, AlertKind, Severity)> {
        alerts
            .iter()
            .map(|a| (a.action, a.kind, a.severity))
            .collect()
    }

    #[test]
    fn occupancy_raises_once_escalates_and_resolves_with_the_same_id() {
        let rules = AlertRules::default();
        let mut s = state();
        assert!(rules.on_metrics(&mut s, &metrics(1, 500, &[])).is_empty());
        let raised = rules.on_metrics(&mut s, &metrics(2, 920, &[]));
        assert_eq!(
            actions(&raised),
            [(AlertAction::Raised, AlertKind::Occupancy, Severity::Warning)]
        );
        assert_eq!(raised[0].alert_id, "ev:occupancy@2");
        // Still over, or just under but within the hysteresis: nothing new.
        assert!(rules.on_metrics(&mut s, &metrics(3, 950, &[])).is_empty());
        assert!(rules.on_metrics(&mut s, &metrics(3, 870, &[])).is_empty());
        // Over capacity: the warning ends and a critical alert starts.
        let escalated = rules.on_metrics(&mut s, &metrics(4, 1001, &[]));
        assert_eq!(
            actions(&escalated),
            [
                (
                    AlertAction::Resolved,
                    AlertKind::Occupancy,
                    Severity::Warning
                ),
                (
                    AlertAction::Raised,
                    AlertKind::Occupancy,
                    Severity::Critical
                )
            ]
        );
        assert_eq!(escalated[0].alert_id, "ev:occupancy@2");
        assert_eq!(escalated[0].duration_ms, Some(2));
        let resolved = rules.on_metrics(&mut s, &metrics(10, 100, &[]));
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].action, AlertAction::Resolved);
        assert_eq!(resolved[0].alert_id, "ev:occupancy@4");
        assert!(s.active.is_empty());
    }

    #[test]
    fn unknown_capacity_never_raises_occupancy() {
        let mut m = metrics(1, 5000, &[]);
        m.capacity = None;
        assert!(
            AlertRules::default()
                .on_metrics(&mut state(), &m)
                .is_empty()
        );
    }

    #[test]
    fn gate_down_and_throughput_collapse_with_hysteresis() {
        let rules = AlertRules::default();
        let mut s = state();
        quiet(&rules, &mut s, 1..=5, &[("G1", "open", 20.0)]);
        let collapsed = rules.on_metrics(&mut s, &metrics(6, 0, &[("G1", "open", 2.0)]));
        assert_eq!(
            actions(&collapsed),
            [(
                AlertAction::Raised,
                AlertKind::ThroughputCollapse,
                Severity::Warning
            )]
        );
        assert_eq!(collapsed[0].subject.as_deref(), Some("G1"));
        // Above the collapse threshold but below the recovery one: still collapsed.
        quiet(&rules, &mut s, [7], &[("G1", "open", 6.0)]);
        let recovered = rules.on_metrics(&mut s, &metrics(8, 0, &[("G1", "open", 15.0)]));
        assert_eq!(recovered[0].action, AlertAction::Resolved);
        let down = rules.on_metrics(&mut s, &metrics(9, 0, &[("G1", "DOWN", 0.0)]));
        assert_eq!(
            actions(&down),
            [(AlertAction::Raised, AlertKind::GateDown, Severity::Critical)]
        );
        // A quiet gate is never judged: no baseline above the minimum.
        let mut q = state();
        quiet(&rules, &mut q, 1..=3, &[("G2", "open", 1.0)]);
        quiet(&rules, &mut q, [4], &[("G2", "open", 0.0)]);
    }

    #[test]
    fn upstream_alerts_pass_through_and_late_records_are_ignored() {
        let rules = AlertRules::default();
        let mut s = state();
        let mut m = metrics(5, 0, &[]);
        m.alerts = vec![UpstreamAlert {
            id: "a1".into(),
            severity: "ERROR".into(),
            message: "queue > 15 min".into(),
        }];
        let raised = rules.on_metrics(&mut s, &m);
        assert_eq!(
            actions(&raised),
            [(AlertAction::Raised, AlertKind::Upstream, Severity::Critical)]
        );
        assert_eq!(raised[0].alert_id, "ev:upstream:a1@5");
        // An older snapshot arriving late does not resolve it.
        assert!(rules.on_metrics(&mut s, &metrics(4, 0, &[])).is_empty());
        let resolved = rules.on_metrics(&mut s, &metrics(6, 0, &[]));
        assert_eq!(resolved[0].alert_id, "ev:upstream:a1@5");
        assert_eq!(resolved[0].action, AlertAction::Resolved);
    }

    #[test]
    fn service_down_is_raised_by_health_and_survives_snapshots() {
        let rules = AlertRules::default();
        let mut s = state();
        let h = |current, at| ServiceHealth::observed("ev", current, at);
        assert!(
            rules
                .on_health(&mut s, &h(Health::Degraded, 1), &src(1))
                .is_empty()
        );
        let down = rules.on_health(&mut s, &h(Health::Down, 2), &src(2));
        assert_eq!(
            actions(&down),
            [(
                AlertAction::Raised,
                AlertKind::ServiceDown,
                Severity::Critical
            )]
        );
        // A snapshot does not decide service health.
        assert!(rules.on_metrics(&mut s, &metrics(3, 0, &[])).is_empty());
        assert!(
            rules
                .on_health(&mut s, &h(Health::Down, 4), &src(4))
                .is_empty()
        );
        let up = rules.on_health(&mut s, &h(Health::Healthy, 9), &src(9));
        assert_eq!(up[0].action, AlertAction::Resolved);
        assert_eq!(up[0].alert_id, "ev:service-down:gates@2");
        assert_eq!(up[0].duration_ms, Some(7));
    }
}
