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
                (clean_reason(reason), *latency)
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

/// Longest reason kept, in characters: an upstream's answer may be quoted in one.
pub const MAX_REASON_CHARS: usize = 500;

/// A failure reason fit to publish and store: URLs redacted ([`redact_urls`]), control
/// characters (NUL, which PostgreSQL refuses, among them) replaced, and at most
/// [`MAX_REASON_CHARS`] long. Reasons quote what upstream services answer.
pub fn clean_reason(text: &str) -> String {
    let mut out: String = redact_urls(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS + 1)
        .collect();
    if out.chars().count() > MAX_REASON_CHARS {
        out = out.chars().take(MAX_REASON_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// `text` with every http(s) URL cut to scheme, host and path: reasons reach partners (alerts,
/// webhooks, tables), and a URL's userinfo or query string may hold credentials.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["http://", "https://"]
        .iter()
        .filter_map(|s| rest.find(s))
        .min()
    {
        out.push_str(&rest[..start]);
        let url_end = rest[start..]
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}`".contains(c))
            .map_or(rest.len(), |n| start + n);
        let url = &rest[start..url_end];
        // Punctuation ending a sentence or a label belongs to the message, not the URL.
        let trimmed = url.trim_end_matches([':', ',', '.', ';']);
        out.push_str(&redact_url(trimmed));
        out.push_str(&url[trimmed.len()..]);
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    out
}

fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
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
    fn reasons_never_carry_userinfo_or_query_strings() {
        assert_eq!(
            redact_urls(
                "requesting https://user:pw@gate.example:8443/api/health?token=s3cret#x: timed out"
            ),
            "requesting https://gate.example:8443/api/health: timed out"
        );
        assert_eq!(
            redact_urls("error (http://a@h/p?k=v) and http://h2?q, done."),
            "error (http://h/p) and http://h2, done."
        );
        assert_eq!(redact_urls("HTTP 500"), "HTTP 500");
        let mut t = HealthTracker::default();
        let down = t
            .observe(
                Probe::HealthCheck,
                &Observation::Failed {
                    reason: "http://k:secret@h/x?apikey=secret answered HTTP 500".into(),
                    latency: None,
                },
            )
            .unwrap();
        assert!(!down.reason.contains("secret"), "{}", down.reason);
    }

    #[test]
    fn reasons_are_storable_and_bounded() {
        assert_eq!(
            clean_reason("health check reports status \"a\u{0}b\"\n"),
            "health check reports status \"a b\" "
        );
        let long = clean_reason(&"x".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_REASON_CHARS);
        assert!(long.ends_with('…'));
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
