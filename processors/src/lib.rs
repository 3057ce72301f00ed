//! Stateless workers that turn raw topics into derived ones. Each micro-batch's outputs are
//! produced in one Kafka transaction together with the consumed offsets, so a worker killed at
//! any point neither loses nor duplicates an output.

pub mod alerts;
pub mod config;
pub mod drain;
pub mod normalize;
pub mod processor;
pub mod sql;
mod transactional;
mod worker;

pub use config::ProcessorsConfig;
pub use processor::Processor;
pub use worker::{registry, spawn};
