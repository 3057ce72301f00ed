//! The catalogue joined with each event's latest snapshot (`event_catalogue ⋈ event_realtime`),
//! and the status a reader sees. Every route that lists events reads them here, so the public
//! list, the partner list and the dashboard cannot disagree about an event.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use muster_schemas::GateActivity;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::search::{MatchedField, Search};
use super::{Client, column, parsed};
use crate::domain::text_enum;
use crate::problem::Problem;

text_enum!(
    /// The status a reader sees: dates decide `scheduled` and `ended`; otherwise the latest
    /// snapshot's (`live`, `idle` or `degraded`), unless it is older than `stale_after` (`stale`:
    /// old numbers must not pass for live ones), or `pending` before the first snapshot. As a
    /// query parameter, a value outside these is a 400, so a typo does not read as "no events".
    pub enum Status {
        Scheduled => "scheduled",
        Live => "live",
        Idle => "idle",
        Degraded => "degraded",
        Ended => "ended",
        Stale => "stale",
        Pending => "pending",
    }
);

/// The status derived from the catalogue's dates and the latest snapshot (see [`Status`]).
pub fn derived_status(
    now: DateTime<Utc>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    latest: Option<(Status, DateTime<Utc>)>,
    stale_after: Duration,
) -> Status {
    if ends_at.is_some_and(|e| e < now) {
        return Status::Ended;
    }
    match latest {
        Some((status, fetched)) if now - fetched <= stale_after => status,
        Some(_) => Status::Stale,
        None if starts_at.is_some_and(|s| s > now) => Status::Scheduled,
        None => Status::Pending,
    }
}

/// An event's latest snapshot, as `event_realtime` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Realtime {
    /// What the snapshot itself said (`live`, `idle` or `degraded`).
    pub status: Status,
    pub total_registered: i64,
    pub current_attendees: i64,
    pub attendance_rate: f64,
    pub observed_at: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
}

impl Realtime {
    /// The snapshot columns of a row, `None` when the event has none yet (outer join).
    pub(crate) fn from_row(r: &Row) -> Result<Option<Self>, Problem> {
        let Some(fetched_at) = column::<Option<DateTime<Utc>>>(r, "fetched_at")? else {
            return Ok(None);
        };
        Ok(Some(Self {
            status: parsed(r, "status")?,
            total_registered: column(r, "total_registered")?,
            current_attendees: column(r, "current_attendees")?,
            attendance_rate: column(r, "attendance_rate")?,
            observed_at: column(r, "observed_at")?,
            fetched_at,
        }))
    }
}

/// One event of the catalogue with its latest snapshot and the status a reader sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub name: String,
    pub event_type: String,
    pub venue: Option<String>,
    pub capacity: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The event's own UTC offset (from its registered `startsAt`), if it has one.
    pub utc_offset_minutes: Option<i32>,
    pub status: Status,
    /// Absent until the event's first snapshot is projected.
    pub realtime: Option<Realtime>,
    /// The field a search matched (`None` without one).
    pub matched: Option<MatchedField>,
}

impl Event {
    /// current / capacity when the capacity is known.
    pub fn occupancy(&self) -> Option<f64> {
        let current = self.realtime.as_ref()?.current_attendees;
        self.capacity
            .filter(|c| *c > 0)
            .map(|c| current as f64 / c as f64)
    }

    /// The event's own time zone, UTC when it registered none.
    pub fn zone(&self) -> FixedOffset {
        self.utc_offset_minutes
            .and_then(|m| FixedOffset::east_opt(m * 60))
            .unwrap_or(FixedOffset::east_opt(0).expect("UTC is an offset"))
    }
}

/// Which events to read: `ids` (all when `None`) of `event_type` (any when `None`) that
/// `search` matches (all when `None`; see [`Search`]). The ids apply first, so a partner's
/// search never reaches an event it was not granted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub ids: Option<&'a [String]>,
    pub event_type: Option<&'a str>,
    pub search: Option<&'a Search>,
}

/// The catalogue's events (removed ones left out) with their snapshots: by event id, or
/// ranked best first when searched (see [`Search`] and [`MatchedField`]).
pub async fn list(
    client: &Client,
    filter: Filter<'_>,
    stale_after: Duration,
) -> Result<Vec<Event>, Problem> {
    // `hit` holds the search's rank and matched field (nothing without a search). The `WHERE`
    // asks for the same matches in the forms the indexes serve (trigram `ILIKE`, the
    // full-text document); an exact id contains itself.
    let stmt = client
        .prepare_cached(concat!(
            "SELECT c.event_id, c.name, c.event_type, c.venue, c.capacity, c.starts_at, c.ends_at,
                    c.utc_offset_minutes, r.status, r.total_registered, r.current_attendees,
                    r.attendance_rate, r.observed_at, r.fetched_at, hit.matched_field
             FROM event_catalogue c LEFT JOIN event_realtime r USING (event_id)
             LEFT JOIN LATERAL (
                SELECT lower(c.event_id) = lower($3) AS exact,
                       ts_rank(d.doc, d.words) AS rank,
                       greatest(word_similarity($3, c.name), word_similarity($3, c.venue),
                                word_similarity($3, c.event_type),
                                word_similarity($3, c.event_id)) AS similarity,
                       CASE
                         WHEN lower(c.event_id) = lower($3) THEN 'id'
                         WHEN c.name ILIKE $4 OR to_tsvector('simple', c.name) @@ d.words
                           THEN 'name'
                         WHEN c.venue ILIKE $4
                              OR to_tsvector('simple', coalesce(c.venue, '')) @@ d.words
                           THEN 'venue'
                         WHEN c.event_type ILIKE $4
                              OR to_tsvector('simple', c.event_type) @@ d.words THEN 'type'
                         WHEN c.event_id ILIKE $4 OR to_tsvector('simple', c.event_id) @@ d.words
                           THEN 'id'
                         ELSE (SELECT v.f FROM (VALUES (1, 'name', word_similarity($3, c.name)),
                                 (2, 'venue', word_similarity($3, c.venue)),
                                 (3, 'type', word_similarity($3, c.event_type)),
                                 (4, 'id', word_similarity($3, c.event_id))) v(o, f, s)
                               ORDER BY v.s DESC NULLS LAST, v.o LIMIT 1)
                       END AS matched_field
                FROM (SELECT plainto_tsquery('simple', $3) AS words, ",
            muster_schemas::catalogue_search_doc!("c."),
            " AS doc) d
             ) hit ON $3::text IS NOT NULL
             WHERE NOT c.removed
               AND ($1::text[] IS NULL OR c.event_id = ANY($1))
               AND ($2::text IS NULL OR c.event_type = $2)
               AND ($3::text IS NULL
                    OR c.name ILIKE $4 OR c.venue ILIKE $4 OR c.event_type ILIKE $4
                    OR c.event_id ILIKE $4
                    OR ",
            muster_schemas::catalogue_search_doc!("c."),
            " @@ plainto_tsquery('simple', $3))
             ORDER BY hit.exact DESC NULLS LAST, hit.rank DESC NULLS LAST,
                      hit.similarity DESC NULLS LAST, c.event_id"
        ))
        .await?;
    let text = filter.search.map(Search::text);
    let pattern = filter.search.map(Search::pattern);
    let rows = client
        .query(&stmt, &[&filter.ids, &filter.event_type, &text, &pattern])
        .await?;
    let now = Utc::now();
    rows.iter()
        .map(|r| {
            let realtime = Realtime::from_row(r)?;
            let (starts_at, ends_at) = (column(r, "starts_at")?, column(r, "ends_at")?);
            let latest = realtime.as_ref().map(|s| (s.status, s.fetched_at));
            let matched = column::<Option<&str>>(r, "matched_field")?
                .map(|f| {
                    f.parse()
                        .map_err(|e| Problem::internal(format!("column matched_field: {e}")))
                })
                .transpose()?;
            Ok(Event {
                event_id: column(r, "event_id")?,
                name: column(r, "name")?,
                event_type: column(r, "event_type")?,
                venue: column(r, "venue")?,
                capacity: column(r, "capacity")?,
                utc_offset_minutes: column(r, "utc_offset_minutes")?,
                status: derived_status(now, starts_at, ends_at, latest, stale_after),
                starts_at,
                ends_at,
                realtime,
                matched,
            })
        })
        .collect()
}

/// The latest snapshot of one event, if it has one.
pub async fn realtime(client: &Client, event_id: &str) -> Result<Option<Realtime>, Problem> {
    let stmt = client
        .prepare_cached(
            "SELECT status, total_registered, current_attendees, attendance_rate, observed_at,
                    fetched_at
             FROM event_realtime WHERE event_id = $1",
        )
        .await?;
    match client.query_opt(&stmt, &[&event_id]).await? {
        Some(r) => Realtime::from_row(&r),
        None => Ok(None),
    }
}

/// Each gate as the latest snapshot reported it (`event_realtime.gate_activity`): its status
/// upstream and its throughput per minute. Empty before the first snapshot.
pub async fn gates_now(client: &Client, event_id: &str) -> Result<Vec<GateActivity>, Problem> {
    let stmt = client
        .prepare_cached("SELECT gate_activity FROM event_realtime WHERE event_id = $1")
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&event_id]).await? else {
        return Ok(Vec::new());
    };
    serde_json::from_value(column(&row, "gate_activity")?)
        .map_err(|e| Problem::internal(format!("column gate_activity: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_dates_and_staleness() {
        let now = Utc::now();
        let five = Duration::minutes(5);
        let hour = Duration::hours(1);
        let live = |at| Some((Status::Live, at));
        assert_eq!(
            derived_status(now, None, Some(now - hour), live(now), five),
            Status::Ended
        );
        assert_eq!(
            derived_status(now, None, None, live(now - hour), five),
            Status::Stale
        );
        assert_eq!(
            derived_status(now, None, None, Some((Status::Degraded, now)), five),
            Status::Degraded
        );
        assert_eq!(
            derived_status(now, Some(now + hour), None, None, five),
            Status::Scheduled
        );
        assert_eq!(derived_status(now, None, None, None, five), Status::Pending);
    }
}
