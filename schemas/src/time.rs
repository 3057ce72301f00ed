//! When a time an upstream reports can be true: one rule for snapshots (against their fetch)
//! and pushed check-ins (against muster's clock).

/// Times before 2000-01-01T00:00:00Z are clocks that were never set.
pub const EARLIEST: i64 = 946_684_800_000;
/// How far a reported time may be ahead of when muster got it (clock skew, time zones).
pub const MAX_AHEAD_MS: i64 = 24 * 60 * 60 * 1000;

/// Why `millis`, reported as `field`, cannot be true, if it cannot: before 2000, or more than
/// [`MAX_AHEAD_MS`] ahead of `reference` (`(millis, what it is)`, e.g. the fetch).
pub fn implausible(field: &str, millis: i64, reference: Option<(i64, &str)>) -> Option<String> {
    let shown = || {
        chrono::DateTime::from_timestamp_millis(millis)
            .map_or_else(|| format!("{millis} ms"), |t| t.to_rfc3339())
    };
    if millis < EARLIEST {
        return Some(format!("{field} {} is before 2000", shown()));
    }
    match reference {
        Some((at, what)) if millis > at.saturating_add(MAX_AHEAD_MS) => Some(format!(
            "{field} {} is more than a day ahead of {what}",
            shown()
        )),
        _ => None,
    }
}
