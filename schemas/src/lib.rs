//! The wire contract every muster stage shares: topic names, the Avro schema of each topic's
//! records, the Rust types for them, the one Confluent wire-format codec, and what readers
//! outside a stage see of its output (the archive's layout, the read-model tables).
//!
//! Stages never declare another stage's records; they import them from here, so a schema change
//! is one edit and the compiler finds every reader.

pub mod archive;
pub mod codec;
pub mod read_models;
pub mod records;
mod text;
pub mod time;
pub mod topics;

pub use codec::{Codec, CodecError};
pub use records::{
    ActiveAlert, Alert, AlertAction, AlertKind, AlertState, CatalogueEntry, DeadLetter, Direction,
    GateActivity, GateBaseline, Health, NormalizedMetrics, RawCheckin, RawSnapshot, ServiceHealth,
    Severity, SnapshotSource, SourceOffset, TopicRecord, UpstreamAlert,
};
pub use text::camel_case;
