//! Dead letters. The stages that write PostgreSQL (projections, the webhook outbox, the
//! archive) record theirs exactly once: in the `dead_letters` table, inside the transaction that
//! stores the batch's offsets, then published from there to `muster.dead-letter.v1`.
//!
//! A row is unique per (stage, source topic, partition, offset), so a batch applied again (a
//! replay, a rewritten archive batch) records nothing twice. Publishing is at least once: a
//! crash between producing a row and marking it published produces it again, byte for byte
//! the same (its time is the row's), so consumers dedupe on (stage, sourceTopic,
//! sourcePartition, sourceOffset), also carried as the row id in the `muster-dead-letter-id`
//! header.

use std::borrow::Cow;
use std::time::Duration;

use crate::batch::OutRecord;
use crate::migrate::Migrations;
use crate::{Env, Health, Shutdown};
use anyhow::Context;
use muster_schemas::{Codec, DeadLetter, TopicRecord};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_postgres::GenericClient;

use crate::projection::ts;

/// Its own component, applied by every stage that records dead letters.
pub static MIGRATIONS: Migrations = Migrations {
    component: "dead_letters",
    steps: &["CREATE TABLE dead_letters (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stage text NOT NULL,
            source_topic text NOT NULL,
            source_partition int NOT NULL,
            source_offset bigint NOT NULL,
            event_id text,
            reason text NOT NULL,
            payload bytea NOT NULL,
            created_at timestamptz NOT NULL,
            published_at timestamptz,
            claimed_until timestamptz,
            UNIQUE (stage, source_topic, source_partition, source_offset));
         CREATE INDEX dead_letters_unpublished ON dead_letters (id) WHERE published_at IS NULL;
         CREATE INDEX ON dead_letters (event_id, created_at)"],
};

/// Rows published per round.
const BATCH: i64 = 500;
/// How often the publisher looks for new rows.
const POLL: Duration = Duration::from_secs(1);
/// How long a publisher owns the rows it took; another takes them over after that.
const CLAIM: &str = "1 minute";
const PART: &str = "projections.dead-letters";

/// PostgreSQL refuses NUL in text, and a dead letter must never be refused: the bad record's
/// own event id may hold one.
fn storable(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Records `letters` (in the caller's transaction); ones recorded before are skipped. Returns
/// how many are new.
pub async fn record(
    client: &impl GenericClient,
    letters: &[DeadLetter],
) -> Result<u64, tokio_postgres::Error> {
    if letters.is_empty() {
        return Ok(0);
    }
    let stage: Vec<Cow<str>> = letters.iter().map(|d| storable(&d.stage)).collect();
    let topic: Vec<Cow<str>> = letters.iter().map(|d| storable(&d.source_topic)).collect();
    let partition: Vec<i32> = letters.iter().map(|d| d.source_partition).collect();
    let offset: Vec<i64> = letters.iter().map(|d| d.source_offset).collect();
    let event: Vec<Option<Cow<str>>> = letters
        .iter()
        .map(|d| d.event_id.as_deref().map(storable))
        .collect();
    let reason: Vec<Cow<str>> = letters.iter().map(|d| storable(&d.error)).collect();
    let payload: Vec<&[u8]> = letters.iter().map(|d| d.payload.as_slice()).collect();
    let at: Vec<_> = letters.iter().map(|d| ts(d.failed_at)).collect();
    let stage: Vec<&str> = stage.iter().map(|s| s.as_ref()).collect();
    let topic: Vec<&str> = topic.iter().map(|s| s.as_ref()).collect();
    let event: Vec<Option<&str>> = event.iter().map(|s| s.as_deref()).collect();
    let reason: Vec<&str> = reason.iter().map(|s| s.as_ref()).collect();
    client
        .execute(
            "INSERT INTO dead_letters (stage, source_topic, source_partition, source_offset,
                event_id, reason, payload, created_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[],
                $6::text[], $7::bytea[], $8::timestamptz[])
             ON CONFLICT (stage, source_topic, source_partition, source_offset) DO NOTHING",
            &[
                &stage, &topic, &partition, &offset, &event, &reason, &payload, &at,
            ],
        )
        .await
}

/// Publishes up to [`BATCH`] unpublished rows and marks them published. Rows are claimed for
/// a while, not locked, so no connection waits on Kafka and concurrent publishers never take
/// the same rows. Returns how many were published.
pub async fn publish(
    pool: &deadpool_postgres::Pool,
    codec: &Codec,
    producer: &FutureProducer,
) -> anyhow::Result<usize> {
    let claimed = {
        let client = pool.get().await.context("connecting to PostgreSQL")?;
        client
            .query(
                &format!(
                    "UPDATE dead_letters SET claimed_until = now() + interval '{CLAIM}'
                     WHERE id IN (SELECT id FROM dead_letters
                        WHERE published_at IS NULL
                          AND (claimed_until IS NULL OR claimed_until < now())
                        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                     RETURNING id, stage, source_topic, source_partition, source_offset,
                        event_id, reason, payload,
                        (extract(epoch FROM created_at) * 1000)::bigint"
                ),
                &[&BATCH],
            )
            .await
            .context("claiming dead letters to publish")?
    };
    let mut rows: Vec<(i64, DeadLetter)> = claimed
        .iter()
        .map(|r| {
            let dl = DeadLetter {
                stage: r.get(1),
                source_topic: r.get(2),
                source_partition: r.get(3),
                source_offset: r.get(4),
                event_id: r.get(5),
                error: r.get(6),
                payload: r.get(7),
                failed_at: r.get(8),
            };
            (r.get(0), dl)
        })
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    let topic = codec.topics().of::<DeadLetter>();
    let mut published = Vec::with_capacity(rows.len());
    let mut failed = None;
    for (id, dl) in &rows {
        let sent = async {
            let bytes = codec.encode(dl).await?;
            let header = id.to_string();
            let mut record =
                FutureRecord::to(&topic)
                    .payload(&bytes)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "muster-dead-letter-id",
                        value: Some(&header),
                    }));
            if let Some(key) = dl.key() {
                record = record.key(key);
            }
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .context("producing a dead letter")?;
            anyhow::Ok(())
        };
        match sent.await {
            Ok(()) => published.push(*id),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if !published.is_empty() {
        let client = pool.get().await.context("connecting to PostgreSQL")?;
        client
            .execute(
                "UPDATE dead_letters SET published_at = now(), claimed_until = NULL
                 WHERE id = ANY($1)",
                &[&published],
            )
            .await
            .context("marking dead letters published")?;
        metrics::counter!("muster_dead_letters_published_total").increment(published.len() as u64);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(published.len()),
    }
}

/// The publisher of recorded dead letters, run beside every stage that records them.
pub struct Publisher {
    pool: deadpool_postgres::Pool,
    codec: Codec,
    producer: FutureProducer,
    health: Health,
    shutdown: Shutdown,
}

impl Publisher {
    /// Registers the dead-letter schema and creates the producer.
    pub async fn new(env: &Env) -> anyhow::Result<Self> {
        crate::topics::register::<DeadLetter>(&env.codec).await?;
        Ok(Self {
            pool: env.pool.clone(),
            codec: env.codec.clone(),
            producer: env
                .kafka
                .producer()
                .create()
                .context("creating the dead-letter producer")?,
            health: env.health.clone(),
            shutdown: env.shutdown.clone(),
        })
    }

    /// Publishes recorded dead letters until shutdown. Errors are reported and retried: a
    /// dead letter waits in its table, nothing is lost.
    pub async fn run(self) {
        while !self.shutdown.is_cancelled() {
            let wait = match publish(&self.pool, &self.codec, &self.producer).await {
                Ok(n) => {
                    self.health.ready(PART);
                    if n as i64 == BATCH {
                        Duration::ZERO
                    } else {
                        POLL
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "publishing dead letters failed; retrying");
                    self.health.failing(PART, format!("{e:#}"));
                    POLL * 5
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A dead letter as an output of a Kafka transaction (the processors' batches), for stages
/// that publish them with their other outputs instead of recording them in PostgreSQL.
pub async fn output(codec: &Codec, dl: DeadLetter) -> anyhow::Result<OutRecord> {
    metrics::counter!("muster_dead_letters_total", "stage" => dl.stage.clone()).increment(1);
    Ok(OutRecord {
        topic: codec.topics().of::<DeadLetter>(),
        key: dl.event_id.clone(),
        payload: codec.encode(&dl).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_never_reaches_a_dead_letters_text_column() {
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
    }
}
