//! What the overview shows, read from the same read models as `GET /api/dashboard`: the
//! viewer's events with their latest numbers and active alerts, filtered, searched and sorted,
//! the summary over them, and each shown event's recent attendance for its sparkline.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use muster_schemas::Severity;
use serde::Deserialize;

use crate::auth::Viewer;
use crate::problem::Problem;
use crate::read::Reader;
use crate::read::alerts::{self, Alert};
use crate::read::events::{self, Event, Status};
use crate::read::search::Search;
use crate::read::{Client, series};
use crate::resources::dashboard::build::summary;
use crate::resources::dashboard::view::Summary;

/// The sparklines' span and step.
pub const SPAN_BUCKETS: i32 = 12;
pub const STEP_MINUTES: i64 = 15;

/// A column the overview sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Name,
    Status,
    Occupancy,
    Inside,
    Alerts,
    Updated,
}

impl Sort {
    pub const ALL: [Sort; 6] = [
        Self::Name,
        Self::Status,
        Self::Occupancy,
        Self::Inside,
        Self::Alerts,
        Self::Updated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Status => "status",
            Self::Occupancy => "occupancy",
            Self::Inside => "inside",
            Self::Alerts => "alerts",
            Self::Updated => "updated",
        }
    }
}

impl FromStr for Sort {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// The overview's query string, as typed values; a value it does not know is ignored (a page
/// shows everything rather than an error for a stale bookmark).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Query {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
}

/// [`Query`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub event_type: Option<String>,
    pub status: Option<Status>,
    /// The API's search (`q=` of the event lists), the same query.
    pub search: Option<Search>,
    /// Why `q` was refused (shown by the field; the board is then not searched).
    pub search_error: Option<String>,
    pub sort: Sort,
    pub descending: bool,
}

impl Query {
    pub fn filters(&self) -> Filters {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty() && !s.contains('\0'))
                .map(str::to_owned)
        };
        let sort = self
            .sort
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let (search, search_error) = match Search::parse(self.q.as_deref()) {
            Ok(search) => (search, None),
            Err(refused) => (None, refused.detail),
        };
        Filters {
            event_type: text(&self.event_type),
            status: self.status.as_deref().and_then(|s| s.parse().ok()),
            search,
            search_error,
            sort,
            // Numbers read best biggest first; names and times from the top.
            descending: match self.dir.as_deref() {
                Some("asc") => false,
                Some("desc") => true,
                _ => matches!(sort, Sort::Occupancy | Sort::Inside | Sort::Alerts),
            },
        }
    }
}

impl Filters {
    /// The query string that asks for these filters, sorted by `sort` (`descending`).
    pub fn query(&self, sort: Sort, descending: bool) -> String {
        let mut parts = Vec::new();
        let enc = super::layout::url_encode;
        if let Some(t) = &self.event_type {
            parts.push(format!("type={}", enc(t)));
        }
        if let Some(s) = self.status {
            parts.push(format!("status={}", s.as_str()));
        }
        if let Some(q) = &self.search {
            parts.push(format!("q={}", enc(q.text())));
        }
        parts.push(format!("sort={}", sort.as_str()));
        parts.push(format!("dir={}", if descending { "desc" } else { "asc" }));
        parts.join("&")
    }

    fn keeps(&self, e: &Event) -> bool {
        self.status.is_none_or(|s| e.status == s)
            && self.event_type.as_ref().is_none_or(|t| &e.event_type == t)
    }
}

/// One event's row.
#[derive(Debug, Clone)]
pub struct Row {
    pub event: Event,
    pub active_alerts: usize,
    /// The worst severity among its active alerts.
    pub worst: Option<Severity>,
    /// Attendance per step over the span, `None` where no sample fell.
    pub recent: Vec<Option<i64>>,
}

/// Everything the overview shows.
#[derive(Debug, Clone)]
pub struct Board {
    pub rows: Vec<Row>,
    pub summary: Summary,
    pub live: usize,
    /// The types among the viewer's events, for the filter.
    pub types: Vec<String>,
    /// How many events the viewer may see, filters aside.
    pub visible: usize,
    /// The start of the sparklines' first step.
    pub since: DateTime<Utc>,
}

/// The start of the sparklines' span at `now`.
pub fn span_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let step = TimeDelta::minutes(STEP_MINUTES);
    now.duration_trunc(step).unwrap_or(now) - step * (SPAN_BUCKETS - 1)
}

/// Reads the board of `viewer` under `filters`; sparklines only for `spark` (all rows when
/// `None`), since a live update redraws only the rows that changed.
pub async fn load(
    db: &Client,
    viewer: &Viewer,
    filters: &Filters,
    reader: &Reader,
    spark: Option<&[String]>,
) -> Result<Board, Problem> {
    let mine = events::Filter {
        ids: viewer.event_ids(),
        ..Default::default()
    };
    let all = reader.events_on(db, mine).await?;
    let mut types: Vec<String> = all.iter().map(|e| e.event_type.clone()).collect();
    types.sort();
    types.dedup();
    let visible = all.len();
    let candidates = match &filters.search {
        None => all,
        Some(search) => {
            let searched = events::Filter {
                search: Some(search),
                ..mine
            };
            reader.events_on(db, searched).await?
        }
    };
    let shown: Vec<Event> = candidates
        .into_iter()
        .filter(|e| filters.keeps(e))
        .collect();
    let ids: Vec<String> = shown.iter().map(|e| e.event_id.clone()).collect();
    let now = Utc::now();
    // Only active alerts: `since` now leaves the recently resolved out.
    let active = alerts::active_or_since(db, &ids, now).await?;
    let since = span_start(now);
    let spark_ids: Vec<String> = match spark {
        Some(only) => ids.iter().filter(|i| only.contains(i)).cloned().collect(),
        None => ids.clone(),
    };
    let mut recent = if spark_ids.is_empty() {
        HashMap::new()
    } else {
        series::recent_by_event(db, &spark_ids, since, TimeDelta::minutes(STEP_MINUTES)).await?
    };
    let summary = summary(&shown, &active);
    let live = shown.iter().filter(|e| e.status == Status::Live).count();
    let mut rows: Vec<Row> = shown
        .into_iter()
        .map(|event| {
            let mine: Vec<&Alert> = active
                .iter()
                .filter(|a| a.event_id == event.event_id && a.is_active())
                .collect();
            let mut grid = vec![None; SPAN_BUCKETS as usize];
            for p in recent.remove(&event.event_id).unwrap_or_default() {
                let i = (p.at - since).num_minutes() / STEP_MINUTES;
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| grid.get_mut(i)) {
                    *slot = Some(p.attendees);
                }
            }
            Row {
                active_alerts: mine.len(),
                worst: mine.iter().map(|a| a.severity).max(),
                recent: grid,
                event,
            }
        })
        .collect();
    sort(&mut rows, filters.sort, filters.descending);
    Ok(Board {
        rows,
        summary,
        live,
        types,
        visible,
        since,
    })
}

/// When a row's status next changes by the clock alone, with nothing new in the feed: fresh
/// numbers turning stale, an event ending by its dates.
pub fn next_change(board: &Board, stale_after: chrono::Duration) -> Option<DateTime<Utc>> {
    let now = Utc::now();
    board
        .rows
        .iter()
        .flat_map(|r| {
            let stale = r
                .event
                .realtime
                .as_ref()
                .filter(|_| r.event.status != Status::Stale)
                .map(|t| t.fetched_at + stale_after);
            [stale, r.event.ends_at, r.event.starts_at]
        })
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// Where a status sorts: what needs attention first.
fn status_rank(s: Status) -> u8 {
    match s {
        Status::Degraded => 0,
        Status::Stale => 1,
        Status::Live => 2,
        Status::Idle => 3,
        Status::Pending => 4,
        Status::Scheduled => 5,
        Status::Ended => 6,
    }
}

/// Sorts rows by `key`, ties by name; rows without the number last either way.
pub fn sort(rows: &mut [Row], key: Sort, descending: bool) {
    use std::cmp::Ordering;
    let name = |r: &Row| (r.event.name.to_lowercase(), r.event.event_id.clone());
    rows.sort_by(|a, b| {
        let by = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => {
                let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                if descending { o.reverse() } else { o }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let inside = |r: &Row| {
            r.event
                .realtime
                .as_ref()
                .map(|t| t.current_attendees as f64)
        };
        let updated = |r: &Row| {
            r.event
                .realtime
                .as_ref()
                .map(|t| t.observed_at.timestamp_millis() as f64)
        };
        let primary = match key {
            Sort::Name => {
                let o = name(a).cmp(&name(b));
                if descending { o.reverse() } else { o }
            }
            Sort::Status => by(
                Some(status_rank(a.event.status) as f64),
                Some(status_rank(b.event.status) as f64),
            ),
            Sort::Occupancy => by(a.event.occupancy(), b.event.occupancy()),
            Sort::Inside => by(inside(a), inside(b)),
            Sort::Alerts => by(Some(a.active_alerts as f64), Some(b.active_alerts as f64)),
            Sort::Updated => by(updated(a), updated(b)),
        };
        primary.then_with(|| name(a).cmp(&name(b)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, inside: Option<i64>, alerts: usize) -> Row {
        let now = Utc::now();
        Row {
            event: Event {
                event_id: name.into(),
                name: name.into(),
                event_type: "festival".into(),
                venue: None,
                capacity: Some(100),
                starts_at: None,
                ends_at: None,
                utc_offset_minutes: None,
                status: Status::Live,
                realtime: inside.map(|n| events::Realtime {
                    status: Status::Live,
                    total_registered: 200,
                    current_attendees: n,
                    attendance_rate: n as f64 / 200.0,
                    observed_at: now,
                    fetched_at: now,
                }),
                matched: None,
            },
            active_alerts: alerts,
            worst: None,
            recent: vec![],
        }
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.event.name.as_str()).collect()
    }

    #[test]
    fn rows_sort_by_any_column_with_missing_numbers_last() {
        let mut rows = vec![
            row("b", Some(10), 0),
            row("a", None, 2),
            row("c", Some(50), 1),
        ];
        sort(&mut rows, Sort::Inside, true);
        assert_eq!(names(&rows), ["c", "b", "a"]);
        sort(&mut rows, Sort::Inside, false);
        assert_eq!(names(&rows), ["b", "c", "a"]);
        sort(&mut rows, Sort::Alerts, true);
        assert_eq!(names(&rows), ["a", "c", "b"]);
        sort(&mut rows, Sort::Name, false);
        assert_eq!(names(&rows), ["a", "b", "c"]);
        sort(&mut rows, Sort::Occupancy, true);
        assert_eq!(names(&rows), ["c", "b", "a"]);
    }

    #[test]
    fn queries_read_leniently_and_write_back() {
        let q = Query {
            event_type: Some(" festival ".into()),
            status: Some("bogus".into()),
            q: Some("".into()),
            sort: Some("inside".into()),
            dir: None,
        };
        let f = q.filters();
        assert_eq!(f.event_type.as_deref(), Some("festival"));
        assert_eq!(f.status, None);
        assert_eq!(f.search, None);
        assert!(f.descending);
        assert_eq!(
            f.query(Sort::Name, false),
            "type=festival&sort=name&dir=asc"
        );
        let live = Query {
            status: Some("stale".into()),
            ..Default::default()
        };
        assert_eq!(live.filters().status, Some(Status::Stale));
    }
}
