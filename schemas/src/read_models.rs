//! The read-model tables the projections own in PostgreSQL, for readers outside the projections
//! crate (`muster sql`, the insights) that must not depend on it. The projections' registry
//! checks in a unit test that this list names exactly its tables.

pub const TABLES: &[&str] = &[
    "alerts",
    "event_catalogue",
    "event_realtime",
    "event_series_hour",
    "event_series_minute",
    "gate_series_hour",
    "gate_series_minute",
    "service_health_history",
];
