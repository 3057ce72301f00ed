//! The change feed, once per `muster api` process. A listener with a PostgreSQL connection of
//! its own `LISTEN`s for the projections' commits, reads the change log
//! ([`muster_runtime::projection::changes`]) from where it left off, re-reads each changed
//! event once, and broadcasts the changes to every subscriber (the partner stream, the pages),
//! so a thousand subscribers cost one read per change, not a thousand. A subscriber that fell
//! behind the broadcast, or comes back with `Last-Event-ID`, reads the log itself
//! ([`Feed::since`]): the log is numbered in commit order, so resuming after a number misses
//! nothing that is still kept.

mod listen;
pub mod memory;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use muster_runtime::readiness::PartState;
use muster_runtime::{Health, Shutdown};
use tokio::sync::broadcast;
use tokio_postgres::Statement;

pub use muster_schemas::read_models::ChangeKind;

use self::memory::{Memory, Snapshot};
use crate::auth::{Keys, live_keys};
use crate::config::FeedConfig;
use crate::problem::Problem;
use crate::read::events::{self, Event};
use crate::read::{Client, column, parsed, series};

/// One row of the change log, with the event as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its number in the log: increasing in commit order, not always by one.
    pub id: i64,
    pub event_id: String,
    /// Which read model changed.
    pub kind: ChangeKind,
    /// When the projection recorded it.
    pub at: DateTime<Utc>,
    /// The event as every list shows it (catalogue, latest numbers, status), read once for all
    /// subscribers when the change was read: the newest view, not the one at `at`. `None` when
    /// the catalogue does not list the event (removed, or not registered yet).
    pub event: Option<Event>,
}

/// What [`Feed::since`] finds after an id.
#[derive(Debug, Clone, PartialEq)]
pub enum Since {
    /// The changes after it, oldest first, at most `[api.feed] page` of them; `more` when
    /// there may be others after the last one (ask again from its id).
    Changes {
        changes: Vec<Arc<Change>>,
        more: bool,
    },
    /// Changes after it may be gone: it is older than what the log keeps (or not one of its
    /// numbers at all). The reader starts over: re-reads what it shows and continues from
    /// `head`, the newest number now.
    Expired { head: i64 },
}

/// A handle on the process's feed; cheap to clone.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    /// The listener holds the only strong sender: when it stops (at shutdown), every
    /// subscriber's `recv` ends, and so do the streams serving them.
    sender: broadcast::WeakSender<Arc<Change>>,
    pool: deadpool_postgres::Pool,
    stale_after: chrono::Duration,
    cfg: FeedConfig,
    memory: Arc<Memory>,
    health: Health,
}

/// Notified (`NOTIFY muster_reload`) by whoever wrote read models without the change log (a
/// restore, a hand fix, a test's seed): every listener reloads its whole in-memory view.
pub const RELOAD_CHANNEL: &str = "muster_reload";

/// The readiness part of the in-memory view: degraded (answering from PostgreSQL) until the
/// listener has loaded it, and whenever it lost its session.
const MEMORY_PART: &str = "api.memory";

/// A page of the log and its bounds, the same snapshot: the bounds say whether the page can
/// be trusted to follow on from the id it was read after.
const PAGE: &str = "WITH bounds AS (SELECT min(id) AS first, max(id) AS last FROM change_log)
    SELECT b.first, b.last, c.id, c.event_id, c.kind, c.at
    FROM bounds b LEFT JOIN LATERAL (
        SELECT id, event_id, kind, at FROM change_log WHERE id > $1 ORDER BY id LIMIT $2
    ) c ON true
    ORDER BY c.id";

/// The log's rows after an id, before their events are read.
struct Page {
    rows: Vec<(i64, String, ChangeKind, DateTime<Utc>)>,
    more: bool,
    /// The first and last ids the log holds; `None` when it is empty.
    bounds: Option<(i64, i64)>,
}

impl Feed {
    /// Starts the listener (until `shutdown`) on a connection of its own made with `db`.
    /// `stale_after` is the API's: changes carry the status every list shows. The listener
    /// keeps the in-memory view and reports it as `api.memory` in `health`.
    pub fn start(
        cfg: FeedConfig,
        db: tokio_postgres::Config,
        pool: deadpool_postgres::Pool,
        stale_after: chrono::Duration,
        health: Health,
        shutdown: Shutdown,
    ) -> Self {
        let (sender, _) = broadcast::channel(cfg.capacity.max(1));
        let feed = Self {
            inner: Arc::new(Inner {
                sender: sender.downgrade(),
                pool,
                stale_after,
                cfg,
                memory: Arc::new(Memory::new(stale_after)),
                health,
            }),
        };
        feed.memory_serves(false, "not loaded yet");
        tokio::spawn(listen::run(feed.clone(), sender, db, shutdown));
        feed
    }

    /// The in-memory view the listener keeps.
    pub fn memory(&self) -> &Memory {
        &self.inner.memory
    }

    /// Key checks through the in-memory view, then PostgreSQL.
    pub fn keys(&self) -> Keys {
        Keys::new(self.inner.pool.clone(), self.inner.memory.clone())
    }

    /// Reports whether the view serves (`ready`) or routes read PostgreSQL (`degraded`, and
    /// why).
    fn memory_serves(&self, serves: bool, why: &str) {
        let state = if serves {
            PartState::Ready
        } else {
            PartState::Degraded {
                reason: format!("answering from PostgreSQL: {why}"),
            }
        };
        self.inner.health.set(MEMORY_PART, state);
        metrics::gauge!("muster_api_memory_fresh").set(if serves { 1.0 } else { 0.0 });
    }

    /// Everything the view holds, read from PostgreSQL.
    async fn snapshot(&self) -> Result<Snapshot, Problem> {
        let db = self.inner.pool.get().await?;
        let events = events::list(&db, events::Filter::default(), self.inner.stale_after).await?;
        Ok(Snapshot {
            keys: live_keys(&self.inner.memory, &db).await?,
            events,
            minutes: series::last_hours(&db, None).await?,
        })
    }

    /// Loads the whole view from PostgreSQL, replacing what it held.
    async fn load(&self) -> Result<(), Problem> {
        let started = std::time::Instant::now();
        let snapshot = self.snapshot().await?;
        self.inner.memory.load(snapshot);
        self.count_memory();
        metrics::counter!("muster_api_memory_loads_total").increment(1);
        let (events, keys) = self.inner.memory.sizes();
        let load_ms = started.elapsed().as_millis() as u64;
        tracing::info!(events, keys, load_ms, "in-memory view loaded");
        Ok(())
    }

    /// Reloads the keys (a notification said they changed).
    async fn reload_keys(&self) -> Result<(), Problem> {
        let db = self.inner.pool.get().await?;
        self.inner
            .memory
            .replace_keys(live_keys(&self.inner.memory, &db).await?);
        self.count_memory();
        Ok(())
    }

    /// Takes `changes` (as [`Self::resolve`] read them) into the view: their events, and the
    /// last hour of those whose series changed.
    async fn remember(&self, db: &Client, changes: &[Arc<Change>]) -> Result<(), Problem> {
        let memory = &self.inner.memory;
        memory.events_changed(
            changes
                .iter()
                .map(|c| (c.event_id.as_str(), c.event.as_ref())),
        );
        let mut moved: Vec<String> = changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Series)
            .map(|c| c.event_id.clone())
            .collect();
        moved.sort_unstable();
        moved.dedup();
        if !moved.is_empty() {
            let minutes = series::last_hours(db, Some(&moved)).await?;
            memory.minutes_changed(&moved, minutes);
        }
        Ok(())
    }

    fn count_memory(&self) {
        let (events, keys) = self.inner.memory.sizes();
        metrics::gauge!("muster_api_memory_events").set(events as f64);
        metrics::gauge!("muster_api_memory_keys").set(keys as f64);
    }

    /// Every change the listener reads from now on, in log order. A receiver more than
    /// `[api.feed] capacity` changes behind gets `RecvError::Lagged` and should catch up with
    /// [`Self::since`]; `RecvError::Closed` means the process is stopping.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        match self.inner.sender.upgrade() {
            Some(sender) => {
                let rx = sender.subscribe();
                metrics::gauge!("muster_feed_subscribers").set(sender.receiver_count() as f64);
                rx
            }
            // Stopping: a receiver that is closed at once.
            None => broadcast::channel(1).1,
        }
    }

    /// The newest change's id now: where a new subscriber starts (subscribe first, then ask,
    /// then skip what the broadcast brings up to it). 0 before any change.
    pub async fn head(&self) -> Result<i64, Problem> {
        let db = self.inner.pool.get().await?;
        let stmt = db
            .prepare_cached("SELECT coalesce(max(id), 0) FROM change_log")
            .await?;
        Ok(db.query_one(&stmt, &[]).await?.get(0))
    }

    /// The changes after `id` the log still holds, oldest first (for `Last-Event-ID`), or
    /// [`Since::Expired`] when some after it may be gone.
    pub async fn since(&self, id: i64) -> Result<Since, Problem> {
        let db = self.inner.pool.get().await?;
        let stmt = db.prepare_cached(PAGE).await?;
        let page = self.page(&db, &stmt, id).await?;
        if expired(id, page.bounds) {
            let head = page.bounds.map_or(0, |(_, last)| last);
            return Ok(Since::Expired { head });
        }
        let more = page.more;
        let changes = self.resolve(&db, page).await?;
        Ok(Since::Changes { changes, more })
    }

    /// Up to a page of the log after `after`, with its bounds.
    async fn page(
        &self,
        client: &tokio_postgres::Client,
        stmt: &Statement,
        after: i64,
    ) -> Result<Page, Problem> {
        let limit = self.inner.cfg.page.max(1) as i64;
        let rows = client.query(stmt, &[&after, &(limit + 1)]).await?;
        let mut page = Page {
            rows: Vec::with_capacity(rows.len()),
            more: false,
            bounds: None,
        };
        for r in &rows {
            let first: Option<i64> = column(r, "first")?;
            let last: Option<i64> = column(r, "last")?;
            page.bounds = first.zip(last);
            let Some(id) = column::<Option<i64>>(r, "id")? else {
                continue;
            };
            page.rows.push((
                id,
                column(r, "event_id")?,
                parsed(r, "kind")?,
                column(r, "at")?,
            ));
        }
        page.more = page.rows.len() as i64 > limit;
        page.rows.truncate(limit as usize);
        Ok(page)
    }

    /// The page's changes with their events, each event read once.
    async fn resolve(&self, db: &Client, page: Page) -> Result<Vec<Arc<Change>>, Problem> {
        if page.rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = page.rows.iter().map(|r| r.1.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let filter = events::Filter {
            ids: Some(&ids),
            event_type: None,
            search: None,
        };
        let events: HashMap<String, Event> = events::list(db, filter, self.inner.stale_after)
            .await?
            .into_iter()
            .map(|e| (e.event_id.clone(), e))
            .collect();
        Ok(page
            .rows
            .into_iter()
            .map(|(id, event_id, kind, at)| {
                Arc::new(Change {
                    id,
                    kind,
                    at,
                    event: events.get(&event_id).cloned(),
                    event_id,
                })
            })
            .collect())
    }
}

/// Whether changes after `after` may be gone, given the first and last ids the log holds.
/// The log's newest row is never pruned, so an empty log never had one, and a gap between
/// `after` and the first row kept means rows were pruned (or, rarely, ids were drawn by a
/// commit that failed: starting over is then needless but harmless). An id past the last is
/// none of this log's.
fn expired(after: i64, bounds: Option<(i64, i64)>) -> bool {
    match bounds {
        None => after != 0,
        Some((first, last)) => after < first - 1 || after > last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_expired_when_rows_after_it_may_be_gone() {
        // An empty log: only "nothing yet" follows on.
        assert!(!expired(0, None));
        assert!(expired(7, None));
        // The log holds 10..=20.
        let kept = Some((10, 20));
        assert!(!expired(9, kept), "the row before the first kept one");
        assert!(!expired(15, kept));
        assert!(!expired(20, kept), "caught up");
        assert!(expired(8, kept), "row 9 may have been pruned");
        assert!(expired(0, kept));
        assert!(expired(21, kept), "not a number this log gave out");
        assert!(expired(-1, kept));
    }
}
