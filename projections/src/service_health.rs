//! `service_health`: every health transition of every registered service, for history charts
//! and uptime.

use std::sync::LazyLock;

use async_trait::async_trait;
use muster_schemas::ServiceHealth;
use muster_schemas::read_models::ChangeKind;
use tokio_postgres::types::Type;

use muster_runtime::projection::{Decoded, Staging, Target, TopicProjection, ts};

pub struct ServiceHealthHistory;

/// A transition is stored once, by its place in the log.
static STAGING: LazyLock<Staging> = LazyLock::new(|| {
    Staging::new(
        "service_health_history",
        &[
            ("source_partition", Type::INT4),
            ("source_offset", Type::INT8),
            ("event_id", Type::TEXT),
            ("service_name", Type::TEXT),
            ("at", Type::TIMESTAMPTZ),
            ("previous", Type::TEXT),
            ("current", Type::TEXT),
            ("reason", Type::TEXT),
            ("latency_ms", Type::INT8),
            ("consecutive_failures", Type::INT4),
        ],
        "ON CONFLICT DO NOTHING",
    )
});

#[async_trait]
impl TopicProjection for ServiceHealthHistory {
    type Record = ServiceHealth;
    const NAME: &'static str = "service_health";
    const TABLES: &'static [&'static str] = &["service_health_history"];
    const ANNOUNCES: Option<ChangeKind> = Some(ChangeKind::ServiceHealth);
    const MIGRATIONS: &'static [&'static str] = &["CREATE TABLE {schema}.service_health_history (
            source_partition int NOT NULL,
            source_offset bigint NOT NULL,
            event_id text NOT NULL,
            service_name text NOT NULL,
            at timestamptz NOT NULL,
            previous text,
            current text NOT NULL,
            reason text NOT NULL,
            latency_ms bigint,
            consecutive_failures int NOT NULL,
            PRIMARY KEY (source_partition, source_offset));
         CREATE INDEX ON {schema}.service_health_history (event_id, at)"];

    /// Append-only, keyed by the record's place in the log, in one multi-row statement.
    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()> {
        let Target { tx, schema, batch } = at;
        if records.is_empty() {
            return Ok(());
        }
        let mut stage = STAGING.begin(tx).await?;
        for (i, h) in &records {
            let source = &batch[*i];
            stage
                .write(&[
                    &source.partition,
                    &source.offset,
                    &h.event_id,
                    &h.service_name,
                    &ts(h.at),
                    &h.previous.map(|p| p.as_str()),
                    &h.current.as_str(),
                    &h.reason.as_str(),
                    &h.latency_ms,
                    &h.consecutive_failures,
                ])
                .await?;
        }
        stage.merge(schema).await?;
        Ok(())
    }
}
