//! A service's health from what muster observes: its health checks and its collections, tracked
//! separately so that a healthy health endpoint does not hide failing collections (or the
//! reverse) and the state does not flap between them.

use std::time::Duration;

use muster_schemas::Health;

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    HealthCheck,
    Collection,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Ok {
        latency: Duration,
    },
    Failed {
        reason: String,
        latency: Option<Duration>,
    },
}

/// A change worth reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub previous: Option<Health>,
    pub current: Health,
    pub reason: String,
    pub latency: Option<Duration>,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Consecutive failures (of either probe) after which a service is down.
    pub down_after: u32,
    /// A successful answer slower than this makes the service degraded.
    pub slow_after: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            down_after: 3,
            slow_after: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HealthTracker {
    policy: HealthPolicy,
    current: Option<Health>,
    check_failures: u32,
    collection_failures: u32,
    slow: bool,
}

impl HealthTracker {
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    pub fn current(&self) -> Option<Health> {
        self.current
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.check_failures.max(self.collection_failures)
    }

    /// Folds in one observation; returns the transition if the health changed.
    pub fn observe(&mut self, probe: Probe, obs: &Observation) -> Option<Transition> {
        let failures = match probe {
            Probe::HealthCheck => &mut self.check_failures,
            Probe::Collection => &mut self.collection_failures,
        };
        let (reason, latency) = match obs {
            Observation::Ok { latency } => {
                *failures = 0;
                self.slow = *latency > self.policy.slow_after;
                let reason = if self.slow {
                    format!("answered in {} ms", latency.as_millis())
                } else {
                    "answering normally".to_owned()
                };
                (reason, Some(*latency))
            }
            Observation::Failed { reason, latency } => {
                *failures += 1;
                (reason.clone(), *latency)
            }
        };
        let worst = self.consecutive_failures();
        let next = if worst >= self.policy.down_after {
            Health::Down
        } else if worst > 0 || self.slow {
            Health::Degraded
        } else {
            Health::Healthy
        };
        if self.current == Some(next) {
            return None;
        }
        let previous = self.current.replace(next);
        Some(Transition {
            previous,
            current: next,
            reason,
            latency,
            consecutive_failures: worst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> Observation {
        Observation::Ok {
            latency: Duration::from_millis(ms),
        }
    }

    fn failed() -> Observation {
        Observation::Failed {
            reason: "HTTP 500".into(),
            latency: None,
        }
    }

    #[test]
    fn healthy_degraded_down_healthy() {
        let mut t = HealthTracker::default();
        let first = t.observe(Probe::HealthCheck, &ok(10)).unwrap();
        assert_eq!((first.previous, first.current), (None, Health::Healthy));
        let d = t.observe(Probe::Collection, &failed()).unwrap();
        assert_eq!(
            (d.previous, d.current),
            (Some(Health::Healthy), Health::Degraded)
        );
        assert_eq!(t.observe(Probe::Collection, &failed()), None);
        let down = t.observe(Probe::Collection, &failed()).unwrap();
        assert_eq!((down.current, down.consecutive_failures), (Health::Down, 3));
        assert_eq!(down.reason, "HTTP 500");
        let back = t.observe(Probe::Collection, &ok(10)).unwrap();
        assert_eq!(
            (back.previous, back.current),
            (Some(Health::Down), Health::Healthy)
        );
    }

    #[test]
    fn a_healthy_check_does_not_hide_failing_collections() {
        let mut t = HealthTracker::default();
        for _ in 0..3 {
            t.observe(Probe::Collection, &failed());
            t.observe(Probe::HealthCheck, &ok(5));
        }
        assert_eq!(t.current(), Some(Health::Down));
    }

    #[test]
    fn slow_answers_degrade() {
        let mut t = HealthTracker::default();
        t.observe(Probe::HealthCheck, &ok(10));
        let slow = t.observe(Probe::HealthCheck, &ok(3000)).unwrap();
        assert_eq!(slow.current, Health::Degraded);
        assert_eq!(slow.reason, "answered in 3000 ms");
        assert_eq!(
            t.observe(Probe::HealthCheck, &ok(10)).unwrap().current,
            Health::Healthy
        );
    }
}
