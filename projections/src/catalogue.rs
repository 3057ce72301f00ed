//! `event_catalogue`: every registered event's metadata (name, type, venue, capacity, dates,
//! its own UTC offset, prices), from `muster.catalogue.v1`, for the API and analytics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use muster_schemas::CatalogueEntry;
use muster_schemas::read_models::ChangeKind;

use muster_runtime::projection::{Decoded, Target, TopicProjection, sql, ts};

pub struct EventCatalogue;

fn ts_opt(millis: Option<i64>) -> Option<DateTime<Utc>> {
    millis.map(ts)
}

#[async_trait]
impl TopicProjection for EventCatalogue {
    type Record = CatalogueEntry;
    const NAME: &'static str = "event_catalogue";
    const TABLES: &'static [&'static str] = &["event_catalogue"];
    const READS_FROM_START: bool = true;
    const ANNOUNCES: Option<ChangeKind> = Some(ChangeKind::Catalogue);
    const MIGRATIONS: &'static [&'static str] = &[
        "CREATE TABLE {schema}.event_catalogue (
            event_id text PRIMARY KEY,
            service_name text NOT NULL,
            name text NOT NULL,
            event_type text NOT NULL,
            venue text,
            capacity bigint,
            starts_at timestamptz,
            ends_at timestamptz,
            utc_offset_minutes int,
            ticket_price double precision,
            cost_total double precision,
            currency text,
            removed boolean NOT NULL,
            version_at timestamptz NOT NULL);
         CREATE INDEX ON {schema}.event_catalogue (event_type) WHERE NOT removed",
        "ALTER TABLE {schema}.event_catalogue ADD COLUMN other_income double precision",
        // Search (the API's `q=`): trigram indexes for partial words (`ILIKE`), the
        // full-text document for whole words. pg_trgm is a trusted extension: the database's
        // owner may create it; elsewhere an administrator creates it first.
        concat!(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm;
             CREATE INDEX ON {schema}.event_catalogue USING gin (name gin_trgm_ops,
                venue gin_trgm_ops, event_type gin_trgm_ops, event_id gin_trgm_ops);
             CREATE INDEX ON {schema}.event_catalogue USING gin (",
            muster_schemas::catalogue_search_doc!(""),
            ")"
        ),
    ];

    /// The latest version per event wins; a removal keeps the row, marked, so analytics of
    /// past events still find their metadata.
    async fn apply_records(&self, at: Target<'_>, records: Decoded<Self>) -> anyhow::Result<()> {
        let Target { tx, schema, .. } = at;
        let stmt = tx
            .prepare(&sql(
                "INSERT INTO {schema}.event_catalogue AS t (event_id, service_name, name,
                    event_type, venue, capacity, starts_at, ends_at, utc_offset_minutes,
                    ticket_price, cost_total, currency, removed, version_at, other_income)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (event_id) DO UPDATE SET service_name = excluded.service_name,
                    name = excluded.name, event_type = excluded.event_type,
                    venue = excluded.venue, capacity = excluded.capacity,
                    starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                    utc_offset_minutes = excluded.utc_offset_minutes,
                    ticket_price = excluded.ticket_price, cost_total = excluded.cost_total,
                    currency = excluded.currency, removed = excluded.removed,
                    other_income = excluded.other_income,
                    version_at = excluded.version_at
                 WHERE t.version_at <= excluded.version_at",
                schema,
            ))
            .await?;
        // A removal keeps the metadata the row has (the removal may carry none).
        let remove = tx
            .prepare(&sql(
                "INSERT INTO {schema}.event_catalogue AS t (event_id, service_name, name,
                    event_type, removed, version_at)
                 VALUES ($1, $2, $3, $4, true, $5)
                 ON CONFLICT (event_id) DO UPDATE SET removed = true,
                    version_at = excluded.version_at
                 WHERE t.version_at <= excluded.version_at",
                schema,
            ))
            .await?;
        for (_, e) in records {
            let at = ts(e.at);
            if e.removed {
                tx.execute(
                    &remove,
                    &[&e.event_id, &e.service_name, &e.name, &e.event_type, &at],
                )
                .await?;
                continue;
            }
            tx.execute(
                &stmt,
                &[
                    &e.event_id,
                    &e.service_name,
                    &e.name,
                    &e.event_type,
                    &e.venue,
                    &e.capacity,
                    &ts_opt(e.starts_at),
                    &ts_opt(e.ends_at),
                    &e.utc_offset_minutes,
                    &e.ticket_price,
                    &e.cost_total,
                    &e.currency,
                    &e.removed,
                    &at,
                    &e.other_income,
                ],
            )
            .await?;
        }
        Ok(())
    }
}
