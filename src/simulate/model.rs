//! The simulated events' numbers: a pure function of the event and the time, so tests can
//! recompute what a service served.
//!
//! Each event runs in a repeating cycle (default 10 minutes, compressing a day): doors open,
//! people arrive before the start, peak, and leave at the end; a gate fails for a while in the
//! middle, raising a critical alert.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct SimEvent {
    pub id: String,
    pub name: String,
    pub event_type: &'static str,
    pub registered: i64,
    /// Share of registered people who show up.
    pub show_rate: f64,
    pub gates: usize,
    /// Length of one event day, in seconds.
    pub cycle_secs: f64,
    /// Where in its cycle the event is at time 0, so events are not in lockstep.
    pub phase: f64,
    pub tz: FixedOffset,
}

const TYPES: [&str; 3] = ["conference", "festival", "exhibition"];

impl SimEvent {
    pub fn nth(prefix: &str, i: usize, cycle_secs: f64) -> Self {
        Self {
            id: format!("{prefix}{}", i + 1),
            name: format!("Simulated {} #{}", TYPES[i % 3], i + 1),
            event_type: TYPES[i % 3],
            registered: 400 + 300 * i as i64,
            show_rate: 0.80 + 0.03 * (i % 5) as f64,
            gates: 2 + i % 4,
            cycle_secs,
            phase: (i as f64 * 0.17) % 1.0,
            tz: FixedOffset::east_opt(9 * 3600).expect("valid offset"),
        }
    }

    /// Position in the current cycle, 0..1.
    fn progress(&self, now: DateTime<Utc>) -> f64 {
        let t = now.timestamp_millis() as f64 / 1000.0 / self.cycle_secs + self.phase;
        t - t.floor()
    }

    /// The `s-attend/v1` body served at `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Value {
        let p = self.progress(now);
        let showing = self.registered as f64 * self.show_rate;
        // Arrivals peak just before the start (p = 0.2); departures around the end (p = 0.85).
        let checked_in = (showing * logistic((p - 0.18) / 0.04)).round() as i64;
        let checked_out = (checked_in as f64 * logistic((p - 0.85) / 0.03)).round() as i64;
        let current = checked_in - checked_out;
        let open = (0.05..0.95).contains(&p);
        let failing_gate = (0.5..0.56).contains(&p).then_some(self.gates);
        let arrival_rate =
            showing * logistic_slope((p - 0.18) / 0.04) / 0.04 / (self.cycle_secs / 60.0);
        let gates: Vec<Value> = (1..=self.gates)
            .map(|g| {
                let status = if failing_gate == Some(g) {
                    "down"
                } else if open {
                    "open"
                } else {
                    "closed"
                };
                let throughput = if status == "open" {
                    (arrival_rate / self.gates as f64 * 10.0).round() / 10.0
                } else {
                    0.0
                };
                json!({"id": format!("G{g}"), "status": status, "throughput": throughput})
            })
            .collect();
        let mut alerts = Vec::new();
        if let Some(g) = failing_gate {
            alerts.push(
                json!({"id": format!("{}-gate-G{g}-down", self.id), "severity": "critical",
                               "message": format!("Gate G{g} is not scanning")}),
            );
        }
        if arrival_rate / self.gates as f64 > 40.0 {
            alerts.push(
                json!({"id": format!("{}-queue", self.id), "severity": "warning",
                               "message": "Gate queue > 15 min"}),
            );
        }
        json!({
            "participants": {"total": self.registered},
            "attendance": {"current": current, "checkedIn": checked_in, "checkedOut": checked_out},
            "gates": gates,
            "alerts": alerts,
            "timestamp": now.with_timezone(&self.tz).to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        })
    }
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logistic_slope(x: f64) -> f64 {
    let l = logistic(x);
    l * (1.0 - l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ev: &SimEvent, p: f64) -> Value {
        let secs = ((p - ev.phase).rem_euclid(1.0)) * ev.cycle_secs;
        ev.snapshot(DateTime::from_timestamp_millis((secs * 1000.0) as i64).unwrap())
    }

    #[test]
    fn people_arrive_peak_and_leave() {
        let ev = SimEvent::nth("e", 0, 600.0);
        let current = |p| at(&ev, p)["attendance"]["current"].as_i64().unwrap();
        assert!(current(0.02) < 10);
        assert!(current(0.4) > current(0.1));
        assert!(current(0.4) <= (ev.registered as f64 * ev.show_rate) as i64 + 1);
        assert!(current(0.97) < current(0.6) / 5);
    }

    #[test]
    fn a_gate_fails_mid_event_with_a_critical_alert() {
        let ev = SimEvent::nth("e", 1, 600.0);
        let s = at(&ev, 0.53);
        let gates = s["gates"].as_array().unwrap();
        assert_eq!(gates.last().unwrap()["status"], "down");
        assert_eq!(s["alerts"][0]["severity"], "critical");
        assert!(
            at(&ev, 0.3)["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["severity"] != "critical")
        );
    }

    #[test]
    fn numbers_are_consistent() {
        let ev = SimEvent::nth("e", 2, 600.0);
        for i in 0..100 {
            let s = at(&ev, i as f64 / 100.0);
            let a = &s["attendance"];
            assert_eq!(
                a["current"].as_i64().unwrap(),
                a["checkedIn"].as_i64().unwrap() - a["checkedOut"].as_i64().unwrap()
            );
            assert!(a["checkedIn"].as_i64().unwrap() <= ev.registered);
        }
    }
}
