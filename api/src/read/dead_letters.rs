//! The dead-letter log (`dead_letter_log`, the projection of `muster.dead-letter.v1`), queried
//! once for `GET /api/admin/dead-letters` and the admin's dead-letter page.

use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::Problem;
use crate::read::{capped, column};

/// One record a stage could not process.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Increasing in the order they were projected; what `before` pages by.
    pub id: i64,
    /// The stage that refused it (`normalize`, `ingest.checkins`, `projections.alerts`…): an
    /// open set, named by each stage.
    pub stage: String,
    pub event_id: Option<String>,
    pub reason: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub failed_at: DateTime<Utc>,
    /// The original bytes, base64 (standard alphabet, padded).
    pub payload: String,
    /// The original bytes' length.
    pub payload_length: usize,
    /// The original bytes themselves, for the page's safe preview (not in JSON).
    #[serde(skip)]
    #[schema(ignore)]
    pub bytes: Vec<u8>,
}

/// `GET /api/admin/dead-letters`' query, also the page's filter form.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Query {
    /// Only this stage.
    pub stage: Option<String>,
    /// Only records of this event.
    pub event_id: Option<String>,
    /// Only records older than this id (the previous page's `nextBefore`).
    pub before: Option<i64>,
    /// At most this many, newest first (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A page of dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeadLetterPage)]
pub struct Page {
    pub dead_letters: Vec<DeadLetter>,
    /// The `before` of the next (older) page, if there is one.
    pub next_before: Option<i64>,
}

/// The dead letters `q` selects, newest first.
pub async fn list(db: &impl GenericClient, q: &Query) -> Result<Page, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_query("limit must be between 1 and 500"));
    }
    let stage = q.stage.as_deref().filter(|s| !s.is_empty());
    let event = q.event_id.as_deref().filter(|s| !s.is_empty());
    let rows = db
        .query(
            "SELECT id, stage, event_id, reason, source_topic, source_partition, source_offset,
                    failed_at, payload
             FROM dead_letter_log
             WHERE ($1::text IS NULL OR stage = $1)
               AND ($2::text IS NULL OR event_id = $2)
               AND ($3::bigint IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            &[&stage, &event, &q.before, &(limit as i64 + 1)],
        )
        .await?;
    let (rows, more) = capped(rows, limit as usize);
    let dead_letters = rows
        .iter()
        .map(|r| {
            let bytes: Vec<u8> = column(r, "payload")?;
            Ok(DeadLetter {
                id: column(r, "id")?,
                stage: column(r, "stage")?,
                event_id: column(r, "event_id")?,
                reason: column(r, "reason")?,
                source_topic: column(r, "source_topic")?,
                source_partition: column(r, "source_partition")?,
                source_offset: column(r, "source_offset")?,
                failed_at: column(r, "failed_at")?,
                payload: base64::engine::general_purpose::STANDARD.encode(&bytes),
                payload_length: bytes.len(),
                bytes,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let next_before = more.then(|| dead_letters.last().map(|d| d.id)).flatten();
    Ok(Page {
        dead_letters,
        next_before,
    })
}

/// The stages with dead letters kept, for the page's filter.
pub async fn stages(db: &impl GenericClient) -> Result<Vec<String>, Problem> {
    let rows = db
        .query(
            "SELECT DISTINCT stage FROM dead_letter_log ORDER BY stage",
            &[],
        )
        .await?;
    rows.iter().map(|r| column(r, "stage")).collect()
}
