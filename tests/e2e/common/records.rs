//! Topic records as the stages write them, with the values tests rarely care about filled in;
//! a test changes what it needs with `..`.

use muster_schemas::{
    Alert, AlertAction, AlertKind, NormalizedMetrics, RawSnapshot, Severity, SnapshotSource,
    SourceOffset,
};

/// A live snapshot of `event` at `at`: `current` of 1000 registered attending, no gates, no
/// upstream alerts, no capacity.
pub fn normalized(event: &str, at: i64, current: i64) -> NormalizedMetrics {
    NormalizedMetrics {
        event_id: event.to_owned(),
        timestamp: at,
        fetched_at: at,
        total_registered: 1000,
        current_attendees: current,
        checked_in: current,
        checked_out: 0,
        attendance_rate: current as f64 / 1000.0,
        gate_activity: vec![],
        alerts: vec![],
        status: "live".into(),
        source: SourceOffset {
            topic: "test".into(),
            partition: 0,
            offset: 0,
        },
        capacity: None,
    }
}

/// A polled `s-attend/v1` answer of `event`, HTTP 200, with `body`.
pub fn raw_snapshot(event: &str, fetched_at: i64, body: String) -> RawSnapshot {
    RawSnapshot {
        event_id: event.to_owned(),
        service_name: "test".into(),
        source: SnapshotSource::Poll,
        data_schema: "s-attend/v1".into(),
        fetched_at,
        http_status: 200,
        body,
        capacity: None,
    }
}

/// Gate `G{gate}` of `event` down (raised at `raised_at`), or up again at `at`.
pub fn gate_down(event: &str, gate: i64, action: AlertAction, raised_at: i64, at: i64) -> Alert {
    Alert {
        alert_id: format!("{event}:gate-down:G{gate}@{raised_at}"),
        event_id: event.to_owned(),
        kind: AlertKind::GateDown,
        subject: Some(format!("G{gate}")),
        action,
        severity: Severity::Warning,
        message: format!("gate G{gate} down"),
        raised_at,
        at,
        duration_ms: (action == AlertAction::Resolved).then_some(at - raised_at),
        source: SourceOffset {
            topic: "test".into(),
            partition: 0,
            offset: gate,
        },
    }
}
