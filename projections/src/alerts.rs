//! `alerts`: each alert's lifecycle (raised, resolved, duration) from `muster.alerts.v1`.

use async_trait::async_trait;
use muster_schemas::read_models::ChangeKind;
use muster_schemas::{Alert, AlertAction};

use muster_runtime::projection::{Decoded, Target, TopicProjection, sql, ts};

pub struct AlertLifecycle;

#[async_trait]
impl TopicProjection for AlertLifecycle {
    type Record = Alert;
    const NAME: &'static str = "alerts";
    const TABLES: &'static [&'static str] = &["alerts"];
    const ANNOUNCES: Option<ChangeKind> = Some(ChangeKind::Alerts);
    const MIGRATIONS: &'static [&'static str] = &["CREATE TABLE {schema}.alerts (
            alert_id text PRIMARY KEY,
            event_id text NOT NULL,
            kind text NOT NULL,
            subject text,
            severity text NOT NULL,
            message text NOT NULL,
            raised_at timestamptz NOT NULL,
            resolved_at timestamptz,
            duration_ms bigint,
            state text NOT NULL CHECK (state IN ('active', 'resolved')));
         CREATE INDEX ON {schema}.alerts (event_id, raised_at);
         CREATE INDEX ON {schema}.alerts (state) WHERE state = 'active'"];

    /// Record by record in log order: a resolve may follow its raise in the same batch, and
    /// a resolve seen first (its raise was before this projection's history) still creates
    /// the row, so no lifecycle is lost.
    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()> {
        let Target { tx, schema, .. } = at;
        let raise = tx
            .prepare(&sql(
                "INSERT INTO {schema}.alerts (alert_id, event_id, kind, subject, severity,
                    message, raised_at, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'active')
                 ON CONFLICT (alert_id) DO NOTHING",
                schema,
            ))
            .await?;
        let resolve = tx
            .prepare(&sql(
                "INSERT INTO {schema}.alerts AS t (alert_id, event_id, kind, subject, severity,
                    message, raised_at, resolved_at, duration_ms, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'resolved')
                 ON CONFLICT (alert_id) DO UPDATE SET resolved_at = excluded.resolved_at,
                    duration_ms = excluded.duration_ms, state = 'resolved'",
                schema,
            ))
            .await?;
        for (_, a) in records {
            let common: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                &a.alert_id,
                &a.event_id,
                &a.kind.as_str(),
                &a.subject,
                &a.severity.as_str(),
                &a.message,
                &ts(a.raised_at),
            ];
            match a.action {
                AlertAction::Raised => {
                    tx.execute(&raise, &common).await?;
                }
                AlertAction::Resolved => {
                    let at = ts(a.at);
                    let mut params = common.to_vec();
                    params.push(&at);
                    params.push(&a.duration_ms);
                    tx.execute(&resolve, &params).await?;
                }
            }
        }
        Ok(())
    }
}
