//! Topic names. The version suffix changes only with an incompatible schema change.

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

/// The registry subject of a topic's values (Confluent's TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}
