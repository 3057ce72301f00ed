//! The retry policy of a service: exponential backoff with full jitter, as a pure function so it
//! is tested without waiting.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per collection, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 10_000,
        }
    }
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("syncSettings.retryPolicy.maxAttempts must be at least 1".into());
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err(
                "syncSettings.retryPolicy.initialBackoffMs must not exceed maxBackoffMs".into(),
            );
        }
        Ok(())
    }

    /// The delay before attempt `attempt` (1 = the first retry), or `None` when attempts are
    /// used up. `unit` in [0, 1) picks the point inside the jitter range (full jitter, so many
    /// services failing together do not retry in lockstep).
    pub fn delay(&self, attempt: u32, unit: f64) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .initial_backoff_ms
            .saturating_mul(1u64 << (attempt - 1).min(32));
        let cap = exp.min(self.max_backoff_ms);
        Some(Duration::from_millis(
            (cap as f64 * unit.clamp(0.0, 1.0)) as u64,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 6,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        let full: Vec<_> = (1..6)
            .map(|a| p.delay(a, 1.0).unwrap().as_millis())
            .collect();
        assert_eq!(full, vec![100, 200, 400, 800, 1000]);
        assert_eq!(p.delay(6, 1.0), None);
        assert_eq!(p.delay(3, 0.5), Some(Duration::from_millis(200)));
        assert_eq!(p.delay(3, 0.0), Some(Duration::ZERO));
    }

    #[test]
    fn one_attempt_means_no_retry() {
        let p = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1, 1.0), None);
    }
}
