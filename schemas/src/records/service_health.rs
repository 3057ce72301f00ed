use serde::{Deserialize, Serialize};

use crate::topics;

/// A health transition of a registered service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    pub event_id: String,
    pub service_name: String,
    /// `None` for a service's first observation.
    pub previous: Option<Health>,
    pub current: Health,
    pub reason: String,
    pub latency_ms: Option<i64>,
    pub consecutive_failures: i32,
    pub at: i64,
}

string_enum!(
    /// A service's health as muster sees it.
    Health {
        Healthy => "healthy",
        Degraded => "degraded",
        Down => "down",
    }
);

event_record!(ServiceHealth, topics::SERVICE_HEALTH, "service_health.avsc");
