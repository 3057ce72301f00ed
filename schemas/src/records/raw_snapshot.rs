use serde::{Deserialize, Serialize};

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
    /// The event's registered capacity at fetch time; `None` when the service did not say.
    pub capacity: Option<i64>,
}

string_enum!(
    /// How a snapshot reached muster.
    SnapshotSource {
        Poll => "poll",
        Push => "push",
        InitialSync => "initial-sync",
    }
);

event_record!(RawSnapshot, topics::RAW_SNAPSHOTS, "raw_snapshot.avsc");
