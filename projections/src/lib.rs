//! Projection workers: each consumes derived topics (`read_committed`) and applies every batch
//! to its tables in one PostgreSQL transaction that also stores the consumed offsets, so a batch
//! is applied exactly once however often it is read. A record PostgreSQL refuses is isolated
//! and recorded as a dead letter in that transaction ([`refusal`], [`dead_letters`]).

pub mod alerts;
pub mod archive;
pub mod catalogue;
pub mod config;
pub mod dead_letters;
pub mod health;
pub mod offsets;
pub mod projection;
pub mod realtime;
pub mod refusal;
pub mod replay;
pub mod retention;
pub mod series;
mod worker;

pub use config::ProjectionsConfig;
pub use projection::Projection;
pub use worker::{Applier, find, registry, run, run_projections};

use muster_runtime::migrate::Migrations;

/// The runtime's own table. Each projection's tables are migrated by [`migrate`], under the
/// component `projection.<name>`, so a replay can create the same tables in a fresh schema.
pub static MIGRATIONS: Migrations = Migrations {
    component: "projections",
    steps: &[offsets::CREATE_TABLE],
};

/// Every step of `p`'s migrations with `schema` filled in.
pub fn steps(p: &dyn Projection, schema: &str) -> Vec<String> {
    p.migrations()
        .iter()
        .map(|s| projection::sql(s, schema))
        .collect()
}

/// Applies the runtime's and every projection's migrations to the live (`public`) tables.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    muster_runtime::migrate::apply(
        client,
        &[&MIGRATIONS, &archive::MIGRATIONS, &dead_letters::MIGRATIONS],
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
