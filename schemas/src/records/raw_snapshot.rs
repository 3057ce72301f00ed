use serde::{Deserialize, Serialize};

use super::TopicRecord;
use crate::topics;

/// An upstream body exactly as received; the event log's ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSnapshot {
    pub event_id: String,
    pub service_name: String,
    pub source: SnapshotSource,
    pub data_schema: String,
    pub fetched_at: i64,
    pub http_status: i32,
    pub body: String,
}

/// How a snapshot reached muster. Stored as an Avro string, not an enum, so that a new source
/// never breaks an old consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSource {
    Poll,
    Push,
    InitialSync,
}

impl SnapshotSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poll => "poll",
            Self::Push => "push",
            Self::InitialSync => "initial-sync",
        }
    }
}

impl std::str::FromStr for SnapshotSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Poll, Self::Push, Self::InitialSync]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown snapshot source {s:?}"))
    }
}

impl Serialize for SnapshotSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SnapshotSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl TopicRecord for RawSnapshot {
    const TOPIC: &'static str = topics::RAW_SNAPSHOTS;
    const SCHEMA: &'static str = include_str!("../../avro/raw_snapshot.avsc");

    fn key(&self) -> Option<&str> {
        Some(&self.event_id)
    }
}
