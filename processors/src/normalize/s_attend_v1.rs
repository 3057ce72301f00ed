//! `s-attend/v1`, the reference shape of DESIGN.md §2. Missing fields default to 0 or empty, as
//! in the seed; present fields of the wrong type are errors, never guessed at.

use muster_schemas::{GateActivity, UpstreamAlert};
use serde::Deserialize;

use super::{Metrics, NormalizeError, Normalizer};

pub struct SAttendV1;

const SCHEMA: &str = "s-attend/v1";

#[derive(Deserialize, Default)]
#[serde(default)]
struct Body {
    participants: Participants,
    attendance: Attendance,
    gates: Vec<Gate>,
    alerts: Vec<Alert>,
    timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Participants {
    total: i64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Attendance {
    current: i64,
    checked_in: i64,
    checked_out: i64,
}

#[derive(Deserialize)]
struct Gate {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    throughput: f64,
}

#[derive(Deserialize)]
struct Alert {
    id: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    message: String,
}

fn invalid(reason: impl ToString) -> NormalizeError {
    NormalizeError::Invalid {
        schema: SCHEMA,
        reason: reason.to_string(),
    }
}

impl Normalizer for SAttendV1 {
    fn data_schema(&self) -> &'static str {
        SCHEMA
    }

    fn normalize(&self, body: &str) -> Result<Metrics, NormalizeError> {
        let b: Body = serde_json::from_str(body).map_err(invalid)?;
        let timestamp = b
            .timestamp
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(&t)
                    .map(|d| d.timestamp_millis())
                    .map_err(|e| invalid(format!("timestamp {t:?} is not RFC 3339: {e}")))
            })
            .transpose()?;
        let counts = [
            ("participants.total", b.participants.total),
            ("attendance.current", b.attendance.current),
            ("attendance.checkedIn", b.attendance.checked_in),
            ("attendance.checkedOut", b.attendance.checked_out),
        ];
        if let Some((field, v)) = counts.iter().find(|(_, v)| *v < 0) {
            return Err(invalid(format!("{field} is negative ({v})")));
        }
        Ok(Metrics {
            timestamp,
            total_registered: b.participants.total,
            current_attendees: b.attendance.current,
            checked_in: b.attendance.checked_in,
            checked_out: b.attendance.checked_out,
            gate_activity: b
                .gates
                .into_iter()
                .map(|g| GateActivity {
                    gate_id: g.id,
                    status: g.status,
                    throughput: g.throughput,
                })
                .collect(),
            alerts: b
                .alerts
                .into_iter()
                .map(|a| UpstreamAlert {
                    id: a.id,
                    severity: a.severity,
                    message: a.message,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_snapshot() {
        let m = SAttendV1
            .normalize(
                r#"{ "participants": { "total": 1200 },
                     "attendance": { "current": 830, "checkedIn": 900, "checkedOut": 70 },
                     "gates": [ { "id": "G1", "status": "open", "throughput": 12.5 } ],
                     "alerts": [ { "id": "a1", "severity": "warning", "message": "Gate G3 queue > 15 min" } ],
                     "timestamp": "2026-11-24T10:15:00+09:00" }"#,
            )
            .unwrap();
        assert_eq!(m.total_registered, 1200);
        assert_eq!(m.current_attendees, 830);
        assert!((m.attendance_rate() - 830.0 / 1200.0).abs() < 1e-12);
        assert_eq!(m.gate_activity[0].throughput, 12.5);
        assert_eq!(m.alerts[0].id, "a1");
        assert_eq!(m.timestamp, Some(1_795_482_900_000));
        assert_eq!(m.status(), "live");
    }

    #[test]
    fn missing_fields_default_like_the_seed() {
        let m = SAttendV1.normalize(r#"{"gates":[{"id":"G2"}]}"#).unwrap();
        assert_eq!(m.total_registered, 0);
        assert_eq!(m.gate_activity[0].throughput, 0.0);
        assert_eq!(m.timestamp, None);
    }

    #[test]
    fn wrong_types_and_non_json_are_errors() {
        for body in [
            "<html>502</html>",
            r#"{"participants":{"total":"many"}}"#,
            r#"{"gates":"G1"}"#,
            r#"{"timestamp":"yesterday"}"#,
            r#"{"attendance":{"current":-3}}"#,
        ] {
            assert!(SAttendV1.normalize(body).is_err(), "{body} should fail");
        }
    }

    #[test]
    fn a_down_gate_degrades_the_event() {
        let m = SAttendV1
            .normalize(r#"{"attendance":{"current":5},"gates":[{"id":"G1","status":"down"}]}"#)
            .unwrap();
        assert_eq!(m.status(), "degraded");
    }
}
