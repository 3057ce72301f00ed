//! Readiness of a worker's parts. Each part reports itself; `/readyz` is ready when all are
//! (a degraded part still serves, the slower way, so it counts as ready and is named).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PartState {
    Starting,
    Ready,
    /// Serving, but not the way it should (e.g. the API reading PostgreSQL because its
    /// in-memory view lost the change feed): ready, and `/readyz` says why.
    Degraded {
        reason: String,
    },
    Failing {
        reason: String,
    },
}

impl PartState {
    /// Whether the part serves (ready, or degraded).
    pub fn serves(&self) -> bool {
        matches!(self, Self::Ready | Self::Degraded { .. })
    }
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    parts: Arc<RwLock<BTreeMap<String, PartState>>>,
}

impl Health {
    pub fn set(&self, part: &str, state: PartState) {
        self.parts
            .write()
            .expect("health lock poisoned")
            .insert(part.to_owned(), state);
    }

    pub fn ready(&self, part: &str) {
        self.set(part, PartState::Ready);
    }

    pub fn failing(&self, part: &str, reason: impl std::fmt::Display) {
        self.set(
            part,
            PartState::Failing {
                reason: reason.to_string(),
            },
        );
    }

    pub fn snapshot(&self) -> BTreeMap<String, PartState> {
        self.parts.read().expect("health lock poisoned").clone()
    }

    pub fn is_ready(&self) -> bool {
        self.parts
            .read()
            .expect("health lock poisoned")
            .values()
            .all(PartState::serves)
    }

    /// Whether some part is degraded (all may still be ready).
    pub fn is_degraded(&self) -> bool {
        self.parts
            .read()
            .expect("health lock poisoned")
            .values()
            .any(|s| matches!(s, PartState::Degraded { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_part_is() {
        let h = Health::default();
        h.set("kafka", PartState::Starting);
        h.ready("pg");
        assert!(!h.is_ready());
        h.ready("kafka");
        assert!(h.is_ready());
        h.set(
            "memory",
            PartState::Degraded {
                reason: "reading PostgreSQL".into(),
            },
        );
        assert!(
            h.is_ready() && h.is_degraded(),
            "a degraded part still serves"
        );
        h.failing("pg", "connection refused");
        assert!(!h.is_ready());
    }
}
