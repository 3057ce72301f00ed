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

impl ServiceHealth {
    /// The `gates` service of `event_id` found `current` at `at`, after three failed polls
    /// (`HTTP 500`). Unit and end-to-end tests build their health records from it.
    pub fn observed(event_id: &str, current: Health, at: i64) -> Self {
        Self {
            event_id: event_id.into(),
            service_name: "gates".into(),
            previous: None,
            current,
            reason: "HTTP 500".into(),
            latency_ms: None,
            consecutive_failures: 3,
            at,
        }
    }
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
