use serde::{Deserialize, Serialize};

use crate::topics;

/// An event's metrics in muster's own shape (the seed's `NormalizedEventData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NormalizedMetrics {
    pub event_id: String,
    pub timestamp: i64,
    pub fetched_at: i64,
    pub total_registered: i64,
    pub current_attendees: i64,
    pub checked_in: i64,
    pub checked_out: i64,
    pub attendance_rate: f64,
    pub gate_activity: Vec<GateActivity>,
    pub alerts: Vec<UpstreamAlert>,
    pub status: String,
    pub source: SourceOffset,
    /// Carried from the raw record, for occupancy alerts.
    pub capacity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateActivity {
    pub gate_id: String,
    pub status: String,
    pub throughput: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamAlert {
    pub id: String,
    pub severity: String,
    pub message: String,
}

/// Where in the log a derived record came from, for lineage and debugging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl NormalizedMetrics {
    /// A `live` snapshot without gates or alerts: `current` of `registered` present, all
    /// checked in. Unit tests and benchmarks build their records from it.
    pub fn live(event_id: &str, at: i64, registered: i64, current: i64, offset: i64) -> Self {
        Self {
            event_id: event_id.into(),
            timestamp: at,
            fetched_at: at,
            total_registered: registered,
            current_attendees: current,
            checked_in: current,
            checked_out: 0,
            attendance_rate: current as f64 / registered as f64,
            gate_activity: vec![],
            alerts: vec![],
            status: "live".into(),
            source: SourceOffset {
                topic: topics::RAW_SNAPSHOTS.into(),
                partition: 0,
                offset,
            },
            capacity: None,
        }
    }
}

event_record!(
    NormalizedMetrics,
    topics::NORMALIZED,
    "normalized_metrics.avsc"
);
