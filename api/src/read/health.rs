//! The service-health projection (`service_health_history`): every health transition of every
//! registered upstream service, for its history.

use chrono::{DateTime, Utc};
use muster_schemas::Health;
use tokio_postgres::Row;

use super::{Client, column, parsed};
use crate::problem::Problem;

/// One health transition of an event's upstream service.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub service_name: String,
    pub at: DateTime<Utc>,
    /// `None` for a service's first observation.
    pub previous: Option<Health>,
    pub current: Health,
    pub reason: String,
    pub latency_ms: Option<i64>,
    pub consecutive_failures: i32,
}

impl HealthChange {
    fn from_row(r: &Row) -> Result<Self, Problem> {
        let previous = column::<Option<&str>>(r, "previous")?
            .map(|p| {
                p.parse()
                    .map_err(|e| Problem::internal(format!("column previous: {e}")))
            })
            .transpose()?;
        Ok(Self {
            service_name: column(r, "service_name")?,
            at: column(r, "at")?,
            previous,
            current: parsed(r, "current")?,
            reason: column(r, "reason")?,
            latency_ms: column(r, "latency_ms")?,
            consecutive_failures: column(r, "consecutive_failures")?,
        })
    }
}

/// The transitions of `event_id`'s service in `[from, to)`, with the last one before `from`
/// (the health the window starts in), oldest first, at most `limit`.
pub async fn history(
    client: &Client,
    event_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<HealthChange>, Problem> {
    let stmt = client
        .prepare_cached(
            "SELECT service_name, at, previous, current, reason, latency_ms, consecutive_failures
             FROM service_health_history
             WHERE event_id = $1 AND at < $3
               AND at >= coalesce((SELECT max(at) FROM service_health_history
                                   WHERE event_id = $1 AND at < $2), $2)
             ORDER BY at, source_partition, source_offset LIMIT $4",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&event_id, &from, &to, &limit])
        .await?;
    rows.iter().map(HealthChange::from_row).collect()
}
