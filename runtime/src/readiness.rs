//! Readiness of a worker's parts. Each part reports itself; `/readyz` is ready when all are.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PartState {
    Starting,
    Ready,
    Failing { reason: String },
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
            .all(|s| *s == PartState::Ready)
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
        h.failing("pg", "connection refused");
        assert!(!h.is_ready());
    }
}
