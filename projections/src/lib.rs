//! Projection workers: each consumes derived topics (`read_committed`) and applies every batch
//! to its tables in one PostgreSQL transaction that also stores the consumed offsets, so a batch
//! is applied exactly once however often it is read.

pub mod config;
pub mod offsets;
pub mod realtime;
mod worker;

pub use config::ProjectionsConfig;
pub use worker::run;

use muster_runtime::migrate::Migrations;

/// Every table the projections own, in order.
pub static MIGRATIONS: Migrations = Migrations {
    component: "projections",
    steps: &[offsets::CREATE_TABLE, realtime::CREATE_TABLE],
};
