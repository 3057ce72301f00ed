//! The hot reads, answered from the process's in-memory view while it serves
//! ([`crate::feed::memory`]), else from PostgreSQL with the same queries as before it existed:
//! a route asks here and does not care which answered.

use chrono::{Duration, Utc};

use super::Client;
use super::events::{self, Event, Filter, Realtime};
use super::series::{self, MinutePoint};
use crate::feed::Feed;
use crate::problem::Problem;

/// Cheap to clone; one per route.
#[derive(Clone)]
pub struct Reader {
    feed: Feed,
    pool: deadpool_postgres::Pool,
    stale_after: Duration,
}

/// Counts where a hot read was answered (`memory` or `postgres`).
fn answered(read: &'static str, from: &'static str) {
    metrics::counter!("muster_api_reads_total", "read" => read, "from" => from).increment(1);
}

impl Reader {
    pub fn new(feed: Feed, pool: deadpool_postgres::Pool, stale_after: Duration) -> Self {
        Self {
            feed,
            pool,
            stale_after,
        }
    }

    /// How old an event's latest numbers may be before it shows as stale.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    /// The events `filter` asks for, as [`events::list`] answers; a connection is taken from
    /// the pool only when the view cannot answer.
    pub async fn events(&self, filter: Filter<'_>) -> Result<Vec<Event>, Problem> {
        if let Some(events) = self.in_memory(filter) {
            return Ok(events);
        }
        let db = self.pool.get().await?;
        self.in_postgres(&db, filter).await
    }

    /// [`Self::events`] for a route that already holds `db` (it reads more than the events):
    /// never waits for a second connection.
    pub async fn events_on(&self, db: &Client, filter: Filter<'_>) -> Result<Vec<Event>, Problem> {
        match self.in_memory(filter) {
            Some(events) => Ok(events),
            None => self.in_postgres(db, filter).await,
        }
    }

    fn in_memory(&self, filter: Filter<'_>) -> Option<Vec<Event>> {
        let events = self.feed.memory().events(filter, Utc::now())?;
        answered("events", "memory");
        Some(events)
    }

    async fn in_postgres(&self, db: &Client, filter: Filter<'_>) -> Result<Vec<Event>, Problem> {
        answered("events", "postgres");
        events::list(db, filter, self.stale_after).await
    }

    /// An event's latest numbers and its last hour by minute.
    pub async fn attendance(
        &self,
        event_id: &str,
    ) -> Result<(Option<Realtime>, Vec<MinutePoint>), Problem> {
        if let Some(found) = self.feed.memory().attendance(event_id, Utc::now()) {
            answered("attendance", "memory");
            return Ok(found);
        }
        answered("attendance", "postgres");
        let db = self.pool.get().await?;
        // Both queries go out on the connection at once (tokio-postgres pipelines them).
        tokio::try_join!(
            events::realtime(&db, event_id),
            series::last_hour(&db, event_id),
        )
    }
}
