//! `event_realtime`: the latest normalized metrics of each event (what the seed kept in Redis).

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use muster_schemas::NormalizedMetrics;
use muster_schemas::read_models::ChangeKind;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;

use muster_runtime::projection::{Decoded, Staging, Target, TopicProjection, ts};

pub const NAME: &str = "event_realtime";

/// The latest numbers per event. Readers judge staleness by `fetched_at` (when muster fetched
/// the snapshot), not `updated_at`, so a replay does not make old numbers look fresh.
pub struct EventRealtime;

#[async_trait]
impl TopicProjection for EventRealtime {
    type Record = NormalizedMetrics;
    const NAME: &'static str = NAME;
    const TABLES: &'static [&'static str] = &["event_realtime"];
    const ANNOUNCES: Option<ChangeKind> = Some(ChangeKind::Realtime);
    const MIGRATIONS: &'static [&'static str] = &[
        CREATE_TABLE,
        "ALTER TABLE {schema}.event_realtime ADD COLUMN IF NOT EXISTS capacity bigint",
    ];

    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()> {
        let Target { tx, schema, .. } = at;
        apply(tx, schema, records.into_iter().map(|(_, r)| r).collect()).await?;
        Ok(())
    }
}

/// Created with IF NOT EXISTS: databases from before projections had their own migrations
/// already hold this table.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS {schema}.event_realtime (
    event_id text PRIMARY KEY,
    observed_at timestamptz NOT NULL,
    fetched_at timestamptz NOT NULL,
    total_registered bigint NOT NULL,
    current_attendees bigint NOT NULL,
    checked_in bigint NOT NULL,
    checked_out bigint NOT NULL,
    attendance_rate double precision NOT NULL,
    gate_activity jsonb NOT NULL,
    alerts jsonb NOT NULL,
    status text NOT NULL,
    source_partition int NOT NULL,
    source_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now())";

/// Keeps, per event, the record a reader should see: the newest by snapshot time, and of equal
/// times the later in the log. Pure, so the rule is tested without a database.
pub fn latest_per_event(records: Vec<NormalizedMetrics>) -> Vec<NormalizedMetrics> {
    let mut latest: HashMap<String, NormalizedMetrics> = HashMap::new();
    for r in records {
        match latest.get(&r.event_id) {
            Some(cur) if (cur.timestamp, cur.source.offset) > (r.timestamp, r.source.offset) => {}
            _ => {
                latest.insert(r.event_id.clone(), r);
            }
        }
    }
    let mut out: Vec<_> = latest.into_values().collect();
    out.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    out
}

/// Staged and merged once per batch; an older snapshot never overwrites a newer one.
static STAGING: LazyLock<Staging> = LazyLock::new(|| {
    Staging::new(
        "event_realtime",
        &[
            ("event_id", Type::TEXT),
            ("observed_at", Type::TIMESTAMPTZ),
            ("fetched_at", Type::TIMESTAMPTZ),
            ("total_registered", Type::INT8),
            ("current_attendees", Type::INT8),
            ("checked_in", Type::INT8),
            ("checked_out", Type::INT8),
            ("attendance_rate", Type::FLOAT8),
            ("gate_activity", Type::JSONB),
            ("alerts", Type::JSONB),
            ("status", Type::TEXT),
            ("source_partition", Type::INT4),
            ("source_offset", Type::INT8),
            ("capacity", Type::INT8),
        ],
        "ON CONFLICT (event_id) DO UPDATE SET
            observed_at = excluded.observed_at, fetched_at = excluded.fetched_at,
            total_registered = excluded.total_registered,
            current_attendees = excluded.current_attendees, checked_in = excluded.checked_in,
            checked_out = excluded.checked_out, attendance_rate = excluded.attendance_rate,
            gate_activity = excluded.gate_activity, alerts = excluded.alerts,
            status = excluded.status, source_partition = excluded.source_partition,
            source_offset = excluded.source_offset, capacity = excluded.capacity,
            updated_at = now()
         WHERE t.observed_at <= excluded.observed_at",
    )
});

/// The latest snapshot per event of the batch, merged into the table.
pub async fn apply(
    tx: &Transaction<'_>,
    schema: &str,
    records: Vec<NormalizedMetrics>,
) -> Result<u64, tokio_postgres::Error> {
    let rows = latest_per_event(records);
    if rows.is_empty() {
        return Ok(0);
    }
    let mut stage = STAGING.begin(tx).await?;
    for r in &rows {
        // The gates and alerts as their records serialize them (`gateId`, `status`,
        // `throughput`; `id`, `severity`, `message`).
        stage
            .write(&[
                &r.event_id,
                &ts(r.timestamp),
                &ts(r.fetched_at),
                &r.total_registered,
                &r.current_attendees,
                &r.checked_in,
                &r.checked_out,
                &r.attendance_rate,
                &serde_json::json!(r.gate_activity),
                &serde_json::json!(r.alerts),
                &r.status.as_str(),
                &r.source.partition,
                &r.source.offset,
                &r.capacity,
            ])
            .await?;
    }
    stage.merge(schema).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, ts: i64, offset: i64, current: i64) -> NormalizedMetrics {
        NormalizedMetrics::live(id, ts, 100, current, offset)
    }

    #[test]
    fn newest_snapshot_wins_even_when_it_arrives_first() {
        let out = latest_per_event(vec![
            rec("a", 20, 1, 7),
            rec("a", 10, 2, 5),
            rec("b", 5, 3, 1),
            rec("b", 5, 4, 2),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].current_attendees, 7);
        assert_eq!(out[1].current_attendees, 2);
    }
}
