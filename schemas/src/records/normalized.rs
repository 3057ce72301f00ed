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

event_record!(
    NormalizedMetrics,
    topics::NORMALIZED,
    "normalized_metrics.avsc"
);
