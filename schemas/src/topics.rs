//! Topic names. Each record type has a base name (its `TopicRecord::TOPIC`); the name on the
//! cluster is that behind `kafka.topic_prefix`, so deployments or test runs sharing a cluster
//! never read each other's records. The version suffix changes only with an incompatible schema
//! change.

use std::sync::Arc;

use crate::records::TopicRecord;

pub const RAW_SNAPSHOTS: &str = "muster.raw.snapshots.v1";
pub const RAW_CHECKINS: &str = "muster.raw.checkins.v1";
pub const SERVICE_HEALTH: &str = "muster.service-health.v1";
pub const NORMALIZED: &str = "muster.normalized.v1";
pub const ALERTS: &str = "muster.alerts.v1";
/// Compacted: the alerts processor's state per event, written with its alerts.
pub const ALERTS_STATE: &str = "muster.alerts.state.v1";
/// Compacted: every registered event's metadata, from registration.
pub const CATALOGUE: &str = "muster.catalogue.v1";
pub const DEAD_LETTER: &str = "muster.dead-letter.v1";

/// The registry subject of a topic's values (Confluent's TopicNameStrategy): it follows the
/// name on the cluster, so a prefixed deployment has subjects of its own.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The name on the cluster of the topic `base` under `prefix` (`kafka.topic_prefix`).
pub fn named(prefix: &str, base: &str) -> String {
    format!("{prefix}{base}")
}

/// The topic names of one deployment (its `kafka.topic_prefix`). Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    prefix: Arc<str>,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name on the cluster of the topic `base`.
    pub fn name(&self, base: &str) -> String {
        named(&self.prefix, base)
    }

    /// The name on the cluster of `R`'s topic.
    pub fn of<R: TopicRecord>(&self) -> String {
        self.name(R::TOPIC)
    }

    /// Whether `actual` (a name on the cluster, e.g. a consumed record's topic) is `R`'s topic.
    pub fn is<R: TopicRecord>(&self, actual: &str) -> bool {
        self.base(actual) == Some(R::TOPIC)
    }

    /// The base name of `actual`, `None` when it lacks the prefix.
    pub fn base<'a>(&self, actual: &'a str) -> Option<&'a str> {
        actual.strip_prefix(&*self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Alert, NormalizedMetrics};

    #[test]
    fn names_are_the_base_behind_the_prefix() {
        let none = Topics::default();
        assert_eq!(none.of::<Alert>(), ALERTS);
        assert!(none.is::<Alert>(ALERTS));
        let t = Topics::new("run-7.");
        assert_eq!(t.of::<Alert>(), "run-7.muster.alerts.v1");
        assert_eq!(named("run-7.", ALERTS), t.of::<Alert>());
        assert!(t.is::<Alert>("run-7.muster.alerts.v1"));
        assert!(!t.is::<Alert>(ALERTS));
        assert!(!t.is::<NormalizedMetrics>("run-7.muster.alerts.v1"));
        assert_eq!(t.base("run-7.muster.alerts.v1"), Some(ALERTS));
        assert_eq!(t.base("other.muster.alerts.v1"), None);
    }
}
