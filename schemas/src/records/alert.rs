use serde::{Deserialize, Serialize};

use super::SourceOffset;
use crate::topics;

/// One transition of an alert. A raise and its resolve carry the same `alert_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub alert_id: String,
    pub event_id: String,
    pub kind: AlertKind,
    pub subject: Option<String>,
    pub action: AlertAction,
    pub severity: Severity,
    pub message: String,
    pub raised_at: i64,
    pub at: i64,
    /// `at - raised_at` on a resolve.
    pub duration_ms: Option<i64>,
    pub source: SourceOffset,
}

string_enum!(
    /// What condition an alert reports.
    AlertKind {
        Occupancy => "occupancy",
        GateDown => "gate-down",
        ThroughputCollapse => "throughput-collapse",
        ServiceDown => "service-down",
        Upstream => "upstream",
    }
);

string_enum!(
    AlertAction {
        Raised => "raised",
        Resolved => "resolved",
    }
);

string_enum!(
    Severity {
        Info => "info",
        Warning => "warning",
        Critical => "critical",
    }
);

impl Severity {
    /// Upstream services name severities freely; anything unknown counts as a warning.
    pub fn parse_lenient(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "info" | "notice" | "low" => Self::Info,
            "critical" | "error" | "high" | "fatal" | "emergency" => Self::Critical,
            _ => Self::Warning,
        }
    }
}

event_record!(Alert, topics::ALERTS, "alert.avsc");

/// The alerts processor's memory of one event (latest value per event in a compacted topic).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertState {
    pub event_id: String,
    pub active: Vec<ActiveAlert>,
    pub gate_baselines: Vec<GateBaseline>,
    pub last_metrics_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    pub alert_id: String,
    pub kind: AlertKind,
    pub subject: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub raised_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateBaseline {
    pub gate_id: String,
    pub throughput: f64,
}

event_record!(AlertState, topics::ALERTS_STATE, "alert_state.avsc");
