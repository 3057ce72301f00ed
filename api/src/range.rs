//! Time ranges in query strings: `timeRange=24h` relative spans, and `from`/`to` windows, with
//! the series resolution each one reads so that no answer scans more rows than it shows.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::domain::text_enum;
use crate::problem::Problem;

/// The longest span a query may cover: the hourly series' retention.
pub const MAX_SPAN_DAYS: i64 = 400;

/// A span back from now: `<n>m`, `<n>h` or `<n>d`, from one minute to 400 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a time range like 90m, 24h or 7d");
        let unit = s.chars().last().ok_or_else(bad)?;
        let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let d = match unit {
            'm' => Duration::try_minutes(n),
            'h' => Duration::try_hours(n),
            'd' => Duration::try_days(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        if d < Duration::minutes(1) || d > Duration::days(MAX_SPAN_DAYS) {
            return Err(format!(
                "{s:?} is outside 1m..{MAX_SPAN_DAYS}d, the span the series keep"
            ));
        }
        Ok(Self(d))
    }
}

text_enum!(
    /// Which stored series a range reads, and how wide its chart points are.
    pub enum Resolution {
        Minute => "minute",
        Hour => "hour",
        Day => "day",
    }
);

impl Resolution {
    /// Minutes up to 6 hours, hours up to 14 days (the minute series' retention), days beyond.
    pub fn for_span(span: Duration) -> Self {
        if span <= Duration::hours(6) {
            Self::Minute
        } else if span <= Duration::days(14) {
            Self::Hour
        } else {
            Self::Day
        }
    }

    /// The event series table holding buckets at least this fine.
    pub fn event_table(self) -> &'static str {
        match self {
            Self::Minute => "event_series_minute",
            Self::Hour | Self::Day => "event_series_hour",
        }
    }

    pub fn gate_table(self) -> &'static str {
        match self {
            Self::Minute => "gate_series_minute",
            Self::Hour | Self::Day => "gate_series_hour",
        }
    }
}

text_enum!(
    /// `resolution=minute|hour` on the premium series routes (stored resolutions only).
    #[derive(Default)]
    pub enum Stored {
        Minute => "minute",
        #[default]
        Hour => "hour",
    }
);

impl From<Stored> for Resolution {
    fn from(s: Stored) -> Self {
        match s {
            Stored::Minute => Self::Minute,
            Stored::Hour => Self::Hour,
        }
    }
}

/// Parses `timeRange`, 24 hours when absent.
pub fn span(param: Option<&str>) -> Result<Duration, Problem> {
    match param {
        None => Ok(Duration::hours(24)),
        Some(s) => s.parse::<Span>().map(|s| s.0).map_err(Problem::bad_query),
    }
}

/// A `from`/`to` window: `to` defaults to now and `from` to 24 hours before `to`. A window
/// longer than the series keep is cut to its last 400 days; answers echo the window they read.
pub fn window(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(Problem::bad_query("from must be before to"));
    }
    Ok((from.max(to - Duration::days(MAX_SPAN_DAYS)), to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_with_bounds() {
        assert_eq!("90m".parse::<Span>().unwrap().0, Duration::minutes(90));
        assert_eq!("24h".parse::<Span>().unwrap().0, Duration::hours(24));
        assert_eq!("7d".parse::<Span>().unwrap().0, Duration::days(7));
        for bad in [
            "",
            "h",
            "24",
            "24x",
            "-1h",
            "0m",
            "401d",
            "1.5h",
            "99999999999999d",
        ] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_default_clamp_and_refuse_inversion() {
        let to: DateTime<Utc> = "2026-11-25T00:00:00Z".parse().unwrap();
        assert_eq!(
            window(None, Some(to)).unwrap(),
            (to - Duration::hours(24), to)
        );
        let old: DateTime<Utc> = "2000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            window(Some(old), Some(to)).unwrap().0,
            to - Duration::days(MAX_SPAN_DAYS)
        );
        assert!(window(Some(to), Some(to)).is_err());
    }

    #[test]
    fn resolution_follows_the_span() {
        assert_eq!(Resolution::for_span(Duration::hours(6)), Resolution::Minute);
        assert_eq!(Resolution::for_span(Duration::hours(24)), Resolution::Hour);
        assert_eq!(Resolution::for_span(Duration::days(30)), Resolution::Day);
    }
}
