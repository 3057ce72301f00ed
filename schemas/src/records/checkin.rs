use serde::{Deserialize, Serialize};

use crate::topics;

/// A pseudonymized gate scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawCheckin {
    pub event_id: String,
    pub gate_id: String,
    pub participant: String,
    pub direction: Direction,
    pub scanned_at: i64,
    pub received_at: i64,
    pub delivery_id: String,
}

string_enum!(
    /// Which way a participant passed the gate.
    Direction {
        In => "in",
        Out => "out",
    }
);

event_record!(RawCheckin, topics::RAW_CHECKINS, "raw_checkin.avsc");
