//! Normalizers turn an upstream body into muster's metrics. There is one per upstream
//! `dataSchema`; the raw record names its schema, and the registry below picks the normalizer.

#[cfg(test)]
mod fuzz_tests;
mod processor;
mod s_attend_v1;
pub mod storable;

pub use processor::Normalize;

use muster_schemas::{GateActivity, RawSnapshot, UpstreamAlert};

/// An upstream snapshot in muster's shape, before lineage is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// The snapshot's own time in epoch milliseconds, if it carried one.
    pub timestamp: Option<i64>,
    pub total_registered: i64,
    pub current_attendees: i64,
    pub checked_in: i64,
    pub checked_out: i64,
    pub gate_activity: Vec<GateActivity>,
    pub alerts: Vec<UpstreamAlert>,
}

impl Metrics {
    /// current / registered, 0 when nobody is registered (not NaN or infinity).
    pub fn attendance_rate(&self) -> f64 {
        if self.total_registered <= 0 {
            0.0
        } else {
            self.current_attendees as f64 / self.total_registered as f64
        }
    }

    /// `degraded` when a gate is down or an alert is critical, `live` when people are in or a
    /// gate is open, `idle` otherwise. Whether an event is scheduled or ended comes from its
    /// catalogue dates, which the snapshot does not carry.
    pub fn status(&self) -> &'static str {
        const DOWN: [&str; 4] = ["down", "error", "failed", "offline"];
        let gate_down = self
            .gate_activity
            .iter()
            .any(|g| DOWN.contains(&g.status.to_ascii_lowercase().as_str()));
        let critical = self
            .alerts
            .iter()
            .any(|a| a.severity.eq_ignore_ascii_case("critical"));
        if gate_down || critical {
            "degraded"
        } else if self.current_attendees > 0
            || self
                .gate_activity
                .iter()
                .any(|g| g.status.eq_ignore_ascii_case("open"))
        {
            "live"
        } else {
            "idle"
        }
    }
}

/// Why a body could not be normalized; becomes the dead letter's `error`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormalizeError {
    #[error("no normalizer for dataSchema {0:?}")]
    UnknownSchema(String),
    #[error("upstream answered HTTP {0}")]
    HttpStatus(i32),
    #[error("body is not valid {schema}: {reason}")]
    Invalid {
        schema: &'static str,
        reason: String,
    },
    #[error("value cannot be stored: {0}")]
    Unstorable(String),
}

/// One upstream format.
pub trait Normalizer: Send + Sync {
    /// The `dataSchema` this normalizer reads, e.g. `s-attend/v1`.
    fn data_schema(&self) -> &'static str;
    fn normalize(&self, body: &str) -> Result<Metrics, NormalizeError>;
}

/// Every normalizer muster knows. Adding a format is a new module plus one line here.
pub fn registry() -> Vec<Box<dyn Normalizer>> {
    vec![Box::new(s_attend_v1::SAttendV1)]
}

/// Picks the normalizer for a raw snapshot, applies it, and refuses what no stage downstream
/// could store.
pub fn normalize(
    normalizers: &[Box<dyn Normalizer>],
    raw: &RawSnapshot,
) -> Result<Metrics, NormalizeError> {
    if !(200..300).contains(&raw.http_status) {
        return Err(NormalizeError::HttpStatus(raw.http_status));
    }
    let metrics = normalizers
        .iter()
        .find(|n| n.data_schema() == raw.data_schema)
        .ok_or_else(|| NormalizeError::UnknownSchema(raw.data_schema.clone()))?
        .normalize(&raw.body)?;
    storable::check(&metrics, raw.fetched_at, raw.capacity).map_err(NormalizeError::Unstorable)?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use muster_schemas::SnapshotSource;

    use super::*;

    fn raw(data_schema: &str, http_status: i32, body: &str) -> RawSnapshot {
        RawSnapshot {
            event_id: "e".into(),
            service_name: "s".into(),
            source: SnapshotSource::Poll,
            data_schema: data_schema.into(),
            fetched_at: 1_795_482_900_000,
            http_status,
            body: body.into(),
            capacity: None,
        }
    }

    #[test]
    fn non_2xx_and_unknown_schemas_are_errors() {
        let r = registry();
        assert_eq!(
            normalize(&r, &raw("s-attend/v1", 404, "{}")),
            Err(NormalizeError::HttpStatus(404))
        );
        assert_eq!(
            normalize(&r, &raw("other/v9", 200, "{}")),
            Err(NormalizeError::UnknownSchema("other/v9".into()))
        );
    }

    #[test]
    fn unstorable_values_are_errors_whatever_the_schema() {
        let r = registry();
        let nul = normalize(
            &r,
            &raw("s-attend/v1", 200, r#"{"gates":[{"id":"G\u0000"}]}"#),
        );
        assert_eq!(
            nul,
            Err(NormalizeError::Unstorable(
                "gates[0].id contains a NUL character".into()
            ))
        );
        let old = normalize(
            &r,
            &raw(
                "s-attend/v1",
                200,
                r#"{"timestamp":"1999-12-31T23:59:59Z"}"#,
            ),
        );
        assert!(matches!(old, Err(NormalizeError::Unstorable(m)) if m.contains("before 2000")));
        let huge = normalize(
            &r,
            &raw(
                "s-attend/v1",
                200,
                r#"{"attendance":{"current":9223372036854775807}}"#,
            ),
        );
        assert!(
            matches!(huge, Err(NormalizeError::Unstorable(m)) if m.contains("attendance.current"))
        );
        let beyond_i64 = normalize(
            &r,
            &raw("s-attend/v1", 200, r#"{"attendance":{"current":1e30}}"#),
        );
        assert!(matches!(beyond_i64, Err(NormalizeError::Invalid { .. })));
    }

    #[test]
    fn zero_registered_gives_rate_zero() {
        let m = normalize(&registry(), &raw("s-attend/v1", 200, "{}")).unwrap();
        assert_eq!(m.attendance_rate(), 0.0);
        assert_eq!(m.status(), "idle");
    }
}
