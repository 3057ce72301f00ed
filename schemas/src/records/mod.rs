//! One type per topic record, each bound to its `.avsc` file.

/// `TopicRecord` for a record keyed by its `event_id` (all but the dead letter), so one
/// event's records stay ordered in one partition.
macro_rules! event_record {
    ($record:ty, $topic:expr, $schema:literal) => {
        impl $crate::records::TopicRecord for $record {
            const TOPIC: &'static str = $topic;
            const SCHEMA: &'static str = include_str!(concat!("../../avro/", $schema));

            fn key(&self) -> Option<&str> {
                Some(&self.event_id)
            }
        }
    };
}

/// A Rust enum written as an Avro `string` (not an Avro enum, so a new variant never breaks an
/// old reader). apache-avro's schema-aware serializer insists on an Avro enum for unit variants,
/// hence the hand-written serde impls.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        $crate::text_values!($name { $($variant => $text),+ });

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod alert;
mod catalogue;
mod checkin;
mod dead_letter;
mod normalized;
mod raw_snapshot;
mod service_health;

pub use alert::{ActiveAlert, Alert, AlertAction, AlertKind, AlertState, GateBaseline, Severity};
pub use catalogue::CatalogueEntry;
pub use checkin::{Direction, RawCheckin};
pub use dead_letter::DeadLetter;
pub use normalized::{GateActivity, NormalizedMetrics, SourceOffset, UpstreamAlert};
pub use raw_snapshot::{RawSnapshot, SnapshotSource};
pub use service_health::{Health, ServiceHealth};

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
