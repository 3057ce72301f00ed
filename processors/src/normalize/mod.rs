//! Normalizers turn an upstream body into muster's metrics. There is one per upstream
//! `dataSchema`; the raw record names its schema, and the registry below picks the normalizer.

mod processor;
mod s_attend_v1;

pub use processor::Normalize;

use muster_schemas::{GateActivity, UpstreamAlert};

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

/// Picks the normalizer for a raw snapshot and applies it.
pub fn normalize(
    normalizers: &[Box<dyn Normalizer>],
    data_schema: &str,
    http_status: i32,
    body: &str,
) -> Result<Metrics, NormalizeError> {
    if !(200..300).contains(&http_status) {
        return Err(NormalizeError::HttpStatus(http_status));
    }
    normalizers
        .iter()
        .find(|n| n.data_schema() == data_schema)
        .ok_or_else(|| NormalizeError::UnknownSchema(data_schema.to_owned()))?
        .normalize(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_2xx_and_unknown_schemas_are_errors() {
        let r = registry();
        assert_eq!(
            normalize(&r, "s-attend/v1", 404, "{}"),
            Err(NormalizeError::HttpStatus(404))
        );
        assert_eq!(
            normalize(&r, "other/v9", 200, "{}"),
            Err(NormalizeError::UnknownSchema("other/v9".into()))
        );
    }

    #[test]
    fn zero_registered_gives_rate_zero() {
        let m = normalize(&registry(), "s-attend/v1", 200, "{}").unwrap();
        assert_eq!(m.attendance_rate(), 0.0);
        assert_eq!(m.status(), "idle");
    }
}
