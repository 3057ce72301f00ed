//! Connectors for the event-management services that run each event's gates: they poll each
//! registered service and publish every body unchanged to `muster.raw.snapshots.v1`.

pub mod config;
pub mod poller;
pub mod retry;
pub mod service;
pub mod store;
mod worker;

pub use config::IngestConfig;
pub use service::EventServiceConfig;
pub use store::MIGRATIONS;
pub use worker::run;
