//! The raw archive for analysts: `muster.raw.snapshots.v1`, `muster.raw.checkins.v1` and
//! `muster.normalized.v1` as Parquet files in a local folder or S3, laid out Hive-style by day
//! and event ([`muster_schemas::archive`]) so DataFusion, DuckDB, Spark or Athena query years of history directly.
//!
//! Exactly once, across crashes: each row is the record at one (topic, partition, offset), and
//! PostgreSQL (`ledger`) holds per partition the next offset to archive. A batch writes many
//! files, which no transaction can span, so before writing any it stores the batch's offset
//! range (the intent); it then writes the files (each put is atomic, and a file's name and
//! content follow from its rows alone), and clears the intent while advancing the offsets in
//! one transaction. A process killed at any point leaves either no intent, and its files were
//! never written or are all accounted for, or an intent, and the next process reads exactly
//! that range again and rewrites the same files over any it finds before going on.
//!
//! Partitions are taken with `assign()`, all of them, at the offsets in PostgreSQL, not through
//! a consumer group: a group's rebalance could move a partition in the middle of a batch whose
//! intent spans several partitions, and the intent must be re-read as one. One process per
//! archive is active, holding a PostgreSQL advisory lock that dies with its session; others
//! stand by and take over within seconds. Writing Parquet is I/O bound, so one suffices.

mod config;
pub mod files;
mod ledger;
pub mod rows;
pub mod target;
mod worker;

pub use config::ArchiveConfig;
pub use muster_schemas::archive::TOPICS;
pub use worker::run;

use muster_runtime::migrate::Migrations;

/// The archive's table, as a component of its own: its versions never depend on how the
/// projections' steps are numbered. `run` applies it too, so the archive never starts without.
pub static MIGRATIONS: Migrations = Migrations {
    component: "archive",
    steps: &[ledger::CREATE_TABLE],
};
