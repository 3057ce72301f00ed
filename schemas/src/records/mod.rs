//! One type per topic record, each bound to its `.avsc` file.

mod dead_letter;
mod normalized;
mod raw_snapshot;

pub use dead_letter::DeadLetter;
pub use normalized::{GateActivity, NormalizedMetrics, SourceOffset, UpstreamAlert};
pub use raw_snapshot::{RawSnapshot, SnapshotSource};

use serde::{Serialize, de::DeserializeOwned};

/// A record type with its topic and writer schema; the codec needs nothing else to encode it.
pub trait TopicRecord: Serialize + DeserializeOwned + Send + Sync {
    const TOPIC: &'static str;
    /// The Avro schema (JSON) the record is written with.
    const SCHEMA: &'static str;

    /// The Kafka key: the event id, so one event's records stay ordered in one partition.
    fn key(&self) -> Option<&str>;
}

/// Milliseconds since the Unix epoch, the unit of every `timestamp-millis` field.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
