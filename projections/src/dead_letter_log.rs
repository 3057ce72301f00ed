//! `dead_letter_log`: the recent records of `muster.dead-letter.v1`, for the admin's dead-letter
//! page and `GET /api/admin/dead-letters` (the first place an operator looks when an upstream
//! sends garbage), so neither reads Kafka per request. Not `dead_letters`: that is the
//! runtime's outbox of the dead letters PostgreSQL stages record before publishing them.
//!
//! Publishing dead letters is at least once, so a record is kept once per (stage, source
//! topic, partition, offset), the key every publisher dedupes on. Rows older than
//! `projections.retention.dead_letters` are deleted by the retention pass.

use std::borrow::Cow;

use async_trait::async_trait;
use muster_schemas::DeadLetter;

use muster_runtime::projection::{Decoded, Target, TopicProjection, sql, ts};

pub struct DeadLetterLog;

/// The table, for the retention pass.
pub const TABLE: &str = "dead_letter_log";

/// PostgreSQL refuses NUL in text; a dead letter about a record with one in its event id must
/// still be kept (refusing it would dead-letter it again, and again).
fn storable(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[async_trait]
impl TopicProjection for DeadLetterLog {
    type Record = DeadLetter;
    const NAME: &'static str = "dead_letter_log";
    const TABLES: &'static [&'static str] = &[TABLE];
    const MIGRATIONS: &'static [&'static str] = &["CREATE TABLE {schema}.dead_letter_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stage text NOT NULL,
            source_topic text NOT NULL,
            source_partition int NOT NULL,
            source_offset bigint NOT NULL,
            event_id text,
            reason text NOT NULL,
            payload bytea NOT NULL,
            failed_at timestamptz NOT NULL,
            UNIQUE (stage, source_topic, source_partition, source_offset));
         CREATE INDEX ON {schema}.dead_letter_log (failed_at);
         CREATE INDEX ON {schema}.dead_letter_log (event_id, id);
         CREATE INDEX ON {schema}.dead_letter_log (stage, id)"];

    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()> {
        let Target { tx, schema, .. } = at;
        let stmt = tx
            .prepare(&sql(
                "INSERT INTO {schema}.dead_letter_log (stage, source_topic, source_partition,
                    source_offset, event_id, reason, payload, failed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (stage, source_topic, source_partition, source_offset) DO NOTHING",
                schema,
            ))
            .await?;
        for (_, d) in records {
            let (stage, topic, reason) = (
                storable(&d.stage),
                storable(&d.source_topic),
                storable(&d.error),
            );
            let event_id = d.event_id.as_deref().map(storable);
            let (stage, topic, reason): (&str, &str, &str) = (&stage, &topic, &reason);
            let event_id: Option<&str> = event_id.as_deref();
            tx.execute(
                &stmt,
                &[
                    &stage,
                    &topic,
                    &d.source_partition,
                    &d.source_offset,
                    &event_id,
                    &reason,
                    &d.payload,
                    &ts(d.failed_at),
                ],
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_and_other_text_kept() {
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
        assert!(matches!(storable("ab"), Cow::Borrowed("ab")));
    }
}
