//! Connectors for the event-management services that run each event's gates: they poll each
//! registered service and publish every body unchanged to `muster.raw.snapshots.v1`.

pub mod auth;
pub mod checkins;
pub mod collector;
pub mod config;
pub mod health_queue;
pub mod registrar;
pub mod retry;
mod schedule;
pub mod service;
pub mod service_health;
pub mod service_table;
mod worker;

pub use config::IngestConfig;
pub use registrar::Registrar;
pub use service::EventServiceConfig;
pub use service_table::MIGRATIONS;
pub use worker::{collector, spawn};
