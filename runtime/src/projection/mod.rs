//! The projection runtime: a projection is a read model owned by one component, built only
//! from topics. The runtime ([`worker`]) consumes, applies each batch in one PostgreSQL
//! transaction with its offsets ([`applier`], [`offsets`]), isolates refused records
//! ([`refusal`]) and retries; `muster replay` rebuilds a projection into fresh tables and swaps
//! them in. A projection only says what it reads, which tables it owns, how to create them, and
//! how a batch changes them. Every stage with PostgreSQL read models fed from topics (the
//! projections, the webhook outbox) runs on it.

pub mod applier;
pub mod changes;
pub mod offsets;
pub mod refusal;
pub mod staging;
pub mod worker;

pub use applier::Applier;
pub use staging::Staging;
pub use worker::{Batches, run};

use crate::migrate::Migrations;

/// The runtime's own tables (stored offsets, the change log). Each projection's tables are
/// migrated by its crate, so a replay can create the same tables in a fresh schema.
pub static MIGRATIONS: Migrations = Migrations {
    component: "projections",
    steps: &[offsets::CREATE_TABLE, changes::CREATE_TABLE],
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use muster_schemas::read_models::ChangeKind;
use muster_schemas::{Codec, TopicRecord};
use tokio_postgres::Transaction;

pub use crate::batch::InRecord;

/// A record that could not be applied, with why; it is recorded as a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Index in the batch.
    pub index: usize,
    pub reason: String,
    pub event_id: Option<String>,
}

#[async_trait]
pub trait Projection: Send + Sync {
    /// Unique and stable: it names the consumer group and the stored offsets.
    fn name(&self) -> &'static str;
    /// Topics it reads.
    fn topics(&self) -> Vec<&'static str>;
    /// True for a projection of a compacted topic that holds state (the catalogue): it is read
    /// from its start whatever `kafka.auto_offset_reset` says, since skipping its history
    /// would leave entries missing for good.
    fn reads_from_start(&self) -> bool {
        false
    }
    /// Tables it owns; a replay rebuilds exactly these and swaps them in together.
    fn tables(&self) -> &'static [&'static str];
    /// The read model live readers know it by: after each batch, the events whose records
    /// applied are recorded under this kind in the change log ([`changes`]). `None` for a
    /// stage no reader watches live (the webhook outbox).
    fn announces(&self) -> Option<ChangeKind> {
        None
    }
    /// Forward-only DDL, with `{schema}` where the schema name goes: applied to `public` as
    /// migrations, and all of them, in order, to a replay's fresh schema. Never edit a
    /// released step; append one.
    fn migrations(&self) -> &'static [&'static str];
    /// Applies one batch (`at.batch`, in log order within each partition) to the tables in
    /// `at.schema`, inside `at.tx`, which also stores the offsets. Must be idempotent per record only in the
    /// sense that the runtime never applies a record twice; may be called with any subset of
    /// a partition's records as long as order is kept. Records it cannot read are returned;
    /// values it cannot store fail the call with PostgreSQL's error (or
    /// [`refusal::BadData`]), and the runtime isolates the records responsible.
    async fn apply(&self, at: Target<'_>, codec: &Codec) -> anyhow::Result<Vec<Rejected>>;
}

/// A projection of one topic's records, as most are: it names its record type and gets the
/// batch decoded, the records that do not decode already set aside as dead letters.
#[async_trait]
pub trait TopicProjection: Send + Sync {
    type Record: TopicRecord;
    /// See [`Projection::name`].
    const NAME: &'static str;
    /// See [`Projection::tables`].
    const TABLES: &'static [&'static str];
    /// See [`Projection::migrations`].
    const MIGRATIONS: &'static [&'static str];
    /// See [`Projection::reads_from_start`].
    const READS_FROM_START: bool = false;
    /// See [`Projection::announces`].
    const ANNOUNCES: Option<ChangeKind> = None;

    /// Applies the decoded records (each with its index in the batch); see
    /// [`Projection::apply`].
    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()>;
}

/// A [`TopicProjection`]'s decoded records, each with its index in the batch.
pub type Decoded<P> = Vec<(usize, <P as TopicProjection>::Record)>;

/// Where a batch is applied: the transaction (that also stores the offsets), the schema of
/// the tables, and the batch as read (for the records' places in the log).
pub struct Target<'a> {
    pub tx: &'a Transaction<'a>,
    pub schema: &'a str,
    pub batch: &'a [InRecord],
}

#[async_trait]
impl<P: TopicProjection> Projection for P {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![P::Record::TOPIC]
    }

    fn reads_from_start(&self) -> bool {
        P::READS_FROM_START
    }

    fn tables(&self) -> &'static [&'static str] {
        P::TABLES
    }

    fn announces(&self) -> Option<ChangeKind> {
        P::ANNOUNCES
    }

    fn migrations(&self) -> &'static [&'static str] {
        P::MIGRATIONS
    }

    async fn apply(&self, at: Target<'_>, codec: &Codec) -> anyhow::Result<Vec<Rejected>> {
        let (records, rejected) = decode_all::<P::Record>(codec, at.batch).await?;
        self.apply_records(at, records).await?;
        Ok(rejected)
    }
}

/// Decodes every record of a batch as `R`, setting aside the ones that do not decode. A
/// registry that cannot be reached is an error (retry), not a bad record.
pub async fn decode_all<R: TopicRecord>(
    codec: &Codec,
    batch: &[InRecord],
) -> anyhow::Result<(Vec<(usize, R)>, Vec<Rejected>)> {
    let mut ok = Vec::with_capacity(batch.len());
    let mut rejected = Vec::new();
    for (index, r) in batch.iter().enumerate() {
        match codec.decode::<R>(&r.payload).await {
            Ok(v) => ok.push((index, v)),
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => rejected.push(Rejected {
                index,
                reason: e.to_string(),
                event_id: None,
            }),
        }
    }
    Ok((ok, rejected))
}

/// A schema name is spliced into SQL, so only plain identifiers are accepted.
pub fn sql(step: &str, schema: &str) -> String {
    assert!(
        !schema.is_empty()
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "schema name {schema:?} is not a plain identifier"
    );
    step.replace("{schema}", schema)
}

/// A `timestamp-millis` field as a PostgreSQL `timestamptz` (the epoch if out of range).
pub fn ts(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}
