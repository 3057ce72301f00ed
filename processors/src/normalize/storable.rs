//! What every stage downstream can store: PostgreSQL refuses NUL characters in `text` and
//! `jsonb`, `bigint` sums overflow, and a timestamp far from the fetch time breaks windows and
//! retention. A snapshot that fails here is dead-lettered by the normalizer, so one bad upstream
//! value never reaches (and stalls) a projection.

use super::Metrics;

/// No event counts more people than this; the cap keeps window sums of counts within `bigint`.
pub const MAX_COUNT: i64 = 1_000_000_000_000;
/// Gates pass fewer people per minute than this; beyond it the value is noise or an overflow.
pub const MAX_THROUGHPUT: f64 = 1e9;
pub use muster_schemas::time::{EARLIEST, MAX_AHEAD_MS};

/// The first value of a normalized snapshot that cannot be stored, named by its field.
/// `fetched_at` (set by ingest) is the reference for the snapshot's time, so a replay decides
/// as the first run did.
pub fn check(m: &Metrics, fetched_at: i64, capacity: Option<i64>) -> Result<(), String> {
    time("fetchedAt", fetched_at, None)?;
    if let Some(t) = m.timestamp {
        time("timestamp", t, Some(fetched_at))?;
    }
    count("participants.total", m.total_registered)?;
    count("attendance.current", m.current_attendees)?;
    count("attendance.checkedIn", m.checked_in)?;
    count("attendance.checkedOut", m.checked_out)?;
    if let Some(c) = capacity {
        count("capacity", c)?;
    }
    for (i, g) in m.gate_activity.iter().enumerate() {
        text(&format!("gates[{i}].id"), &g.gate_id)?;
        text(&format!("gates[{i}].status"), &g.status)?;
        if !g.throughput.is_finite() || !(0.0..=MAX_THROUGHPUT).contains(&g.throughput) {
            return Err(format!(
                "gates[{i}].throughput {} is outside 0..={MAX_THROUGHPUT}",
                g.throughput
            ));
        }
    }
    for (i, a) in m.alerts.iter().enumerate() {
        text(&format!("alerts[{i}].id"), &a.id)?;
        text(&format!("alerts[{i}].severity"), &a.severity)?;
        text(&format!("alerts[{i}].message"), &a.message)?;
    }
    Ok(())
}

fn text(field: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{field} contains a NUL character"));
    }
    Ok(())
}

fn count(field: &str, value: i64) -> Result<(), String> {
    if !(0..=MAX_COUNT).contains(&value) {
        return Err(format!("{field} {value} is outside 0..={MAX_COUNT}"));
    }
    Ok(())
}

fn time(field: &str, millis: i64, fetched_at: Option<i64>) -> Result<(), String> {
    let reference = fetched_at.map(|f| (f, "the fetch"));
    muster_schemas::time::implausible(field, millis, reference).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use muster_schemas::{GateActivity, UpstreamAlert};

    use super::*;

    const FETCHED: i64 = 1_795_482_900_000;

    fn good() -> Metrics {
        Metrics {
            timestamp: Some(FETCHED - 1000),
            total_registered: 1200,
            current_attendees: 830,
            checked_in: 900,
            checked_out: 70,
            gate_activity: vec![GateActivity {
                gate_id: "G1".into(),
                status: "open".into(),
                throughput: 12.5,
            }],
            alerts: vec![UpstreamAlert {
                id: "a1".into(),
                severity: "warning".into(),
                message: "queue".into(),
            }],
        }
    }

    #[test]
    fn a_sound_snapshot_passes() {
        assert_eq!(check(&good(), FETCHED, Some(3000)), Ok(()));
    }

    #[test]
    fn nul_characters_are_named_by_field() {
        let mut m = good();
        m.gate_activity[0].gate_id = "G\u{0}1".into();
        assert_eq!(
            check(&m, FETCHED, None),
            Err("gates[0].id contains a NUL character".into())
        );
        let mut m = good();
        m.alerts[0].message = "\u{0}".into();
        assert!(
            check(&m, FETCHED, None)
                .unwrap_err()
                .contains("alerts[0].message")
        );
    }

    #[test]
    fn counts_out_of_range_are_refused() {
        let mut m = good();
        m.current_attendees = i64::MAX;
        assert!(
            check(&m, FETCHED, None)
                .unwrap_err()
                .starts_with("attendance.current")
        );
        let mut m = good();
        m.checked_out = -1;
        assert!(
            check(&m, FETCHED, None)
                .unwrap_err()
                .starts_with("attendance.checkedOut")
        );
        assert!(
            check(&good(), FETCHED, Some(-5))
                .unwrap_err()
                .starts_with("capacity")
        );
    }

    #[test]
    fn throughput_must_be_finite_and_plausible() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
            let mut m = good();
            m.gate_activity[0].throughput = bad;
            assert!(
                check(&m, FETCHED, None).unwrap_err().contains("throughput"),
                "{bad}"
            );
        }
    }

    #[test]
    fn absurd_timestamps_are_refused() {
        let mut m = good();
        m.timestamp = Some(0);
        assert_eq!(
            check(&m, FETCHED, None),
            Err("timestamp 1970-01-01T00:00:00+00:00 is before 2000".into())
        );
        m.timestamp = Some(FETCHED + MAX_AHEAD_MS + 1);
        assert!(
            check(&m, FETCHED, None)
                .unwrap_err()
                .contains("more than a day")
        );
        m.timestamp = Some(FETCHED + MAX_AHEAD_MS);
        assert_eq!(check(&m, FETCHED, None), Ok(()));
        m.timestamp = Some(i64::MAX);
        assert!(
            check(&m, FETCHED, None)
                .unwrap_err()
                .contains("more than a day")
        );
    }
}
