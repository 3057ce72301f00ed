//! Projection workers: each consumes derived topics (`read_committed`) and applies every batch
//! to its tables in one PostgreSQL transaction that also stores the consumed offsets, so a batch
//! is applied exactly once however often it is read. A record PostgreSQL refuses is isolated
//! and recorded as a dead letter in that transaction. The loop itself is the runtime's
//! ([`muster_runtime::projection`]); this crate holds the read models, the archive, replay and
//! retention.

pub mod alerts;
pub mod archive;
pub mod catalogue;
pub mod config;
pub mod dead_letter_log;
pub mod declared;
pub mod realtime;
mod registry;
pub mod replay;
pub mod retention;
pub mod series;
pub mod service_health;

pub use config::ProjectionsConfig;
pub use muster_runtime::projection::{Applier, Projection};
pub use registry::{all, find, find_in, registry, spawn};

/// Every step of `p`'s migrations with `schema` filled in.
pub fn steps(p: &dyn Projection, schema: &str) -> Vec<String> {
    p.migrations()
        .iter()
        .map(|s| muster_runtime::projection::sql(s, schema))
        .collect()
}

/// Creates or migrates the tables the SQL processors of `processors` declare (after
/// [`migrate`], which creates their catalogue).
pub async fn migrate_declared(
    client: &mut tokio_postgres::Client,
    processors: &muster_processors::ProcessorsConfig,
) -> anyhow::Result<()> {
    declared::migrate(client, &declared::load(processors)?).await
}

/// Applies the runtime's and every projection's migrations to the live (`public`) tables.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    muster_runtime::migrate::apply(
        client,
        &[
            &muster_runtime::projection::MIGRATIONS,
            &archive::MIGRATIONS,
            &muster_runtime::dead_letters::MIGRATIONS,
            &declared::ddl::MIGRATIONS,
        ],
    )
    .await?;
    let sets: Vec<(String, Vec<String>)> = registry()
        .iter()
        .map(|p| {
            (
                format!("projection.{}", p.name()),
                steps(p.as_ref(), "public"),
            )
        })
        .collect();
    muster_runtime::migrate::apply_sets(client, &sets).await
}
