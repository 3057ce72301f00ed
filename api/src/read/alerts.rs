//! The alerts projection (`alerts`): one row per alert, active or resolved.

use chrono::{DateTime, Utc};
use muster_schemas::{AlertKind, Severity};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use super::{Client, column, parsed};
use crate::domain::text_enum;
use crate::problem::Problem;

text_enum!(
    /// Whether an alert still holds.
    pub enum AlertState {
        Active => "active",
        Resolved => "resolved",
    }
);

/// An alert as the alerts projection holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub alert_id: String,
    pub event_id: String,
    #[schema(schema_with = crate::domain::alert_kind)]
    pub kind: AlertKind,
    pub subject: Option<String>,
    #[schema(schema_with = crate::domain::severity)]
    pub severity: Severity,
    pub message: String,
    pub state: AlertState,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.state == AlertState::Active
    }

    fn from_row(r: &Row) -> Result<Self, Problem> {
        Ok(Self {
            alert_id: column(r, "alert_id")?,
            event_id: column(r, "event_id")?,
            kind: parsed(r, "kind")?,
            subject: column(r, "subject")?,
            severity: parsed(r, "severity")?,
            message: column(r, "message")?,
            state: parsed(r, "state")?,
            raised_at: column(r, "raised_at")?,
            resolved_at: column(r, "resolved_at")?,
        })
    }
}

const COLUMNS: &str =
    "alert_id, event_id, kind, subject, severity, message, state, raised_at, resolved_at";

/// The alerts `clause` (`WHERE …`, its order and limit) selects.
async fn select(
    client: &Client,
    clause: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Alert>, Problem> {
    let sql = format!("SELECT {COLUMNS} FROM alerts {clause}");
    let rows = client.query(&sql, params).await?;
    rows.iter().map(Alert::from_row).collect()
}

/// Alerts of the events `$1` that are active or were raised since `$2`.
const ACTIVE_OR_SINCE: &str = "WHERE event_id = ANY($1) AND (state = 'active' OR raised_at >= $2)";

/// Active alerts of `ids`, and those raised since `since`, oldest first (at most 1000).
pub async fn active_or_since(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
) -> Result<Vec<Alert>, Problem> {
    let clause = format!("{ACTIVE_OR_SINCE} ORDER BY raised_at, alert_id LIMIT 1000");
    select(client, &clause, &[&ids, &since]).await
}

/// Active alerts of `ids`, and those raised since `since`, newest first (at most `limit`): what
/// a reader watching alerts sees first.
pub async fn newest_active_or_since(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Alert>, Problem> {
    let clause = format!("{ACTIVE_OR_SINCE} ORDER BY raised_at DESC, alert_id LIMIT $3");
    select(client, &clause, &[&ids, &since, &limit]).await
}

/// Alerts of one event raised in `[from, to)`, resolved or not, oldest first, at most `limit`.
pub async fn raised_between(
    client: &Client,
    event_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Alert>, Problem> {
    select(
        client,
        "WHERE event_id = $1 AND raised_at >= $2 AND raised_at < $3
         ORDER BY raised_at, alert_id LIMIT $4",
        &[&event_id, &from, &to, &limit],
    )
    .await
}
