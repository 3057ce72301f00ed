//! `service_health`: every health transition of every registered service, for history charts
//! and uptime.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use muster_schemas::ServiceHealth;
use muster_schemas::read_models::ChangeKind;

use muster_runtime::projection::{Decoded, Target, TopicProjection, sql, ts};

pub struct ServiceHealthHistory;

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
        let partition: Vec<i32> = records.iter().map(|(i, _)| batch[*i].partition).collect();
        let offset: Vec<i64> = records.iter().map(|(i, _)| batch[*i].offset).collect();
        let event: Vec<&str> = records.iter().map(|(_, h)| h.event_id.as_str()).collect();
        let service: Vec<&str> = records
            .iter()
            .map(|(_, h)| h.service_name.as_str())
            .collect();
        let at: Vec<DateTime<Utc>> = records.iter().map(|(_, h)| ts(h.at)).collect();
        let previous: Vec<Option<&str>> = records
            .iter()
            .map(|(_, h)| h.previous.map(|p| p.as_str()))
            .collect();
        let current: Vec<&str> = records.iter().map(|(_, h)| h.current.as_str()).collect();
        let reason: Vec<&str> = records.iter().map(|(_, h)| h.reason.as_str()).collect();
        let latency: Vec<Option<i64>> = records.iter().map(|(_, h)| h.latency_ms).collect();
        let failures: Vec<i32> = records
            .iter()
            .map(|(_, h)| h.consecutive_failures)
            .collect();
        tx.execute(
            &sql(
                "INSERT INTO {schema}.service_health_history (source_partition, source_offset,
                    event_id, service_name, at, previous, current, reason, latency_ms,
                    consecutive_failures)
                 SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[],
                    $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::bigint[],
                    $10::int[])
                 ON CONFLICT DO NOTHING",
                schema,
            ),
            &[
                &partition, &offset, &event, &service, &at, &previous, &current, &reason, &latency,
                &failures,
            ],
        )
        .await?;
        Ok(())
    }
}
