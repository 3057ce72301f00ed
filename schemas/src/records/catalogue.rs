use serde::{Deserialize, Serialize};

use crate::topics;

/// An event's registration as the catalogue keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEntry {
    pub event_id: String,
    pub service_name: String,
    pub name: String,
    pub event_type: String,
    pub venue: Option<String>,
    pub capacity: Option<i64>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub utc_offset_minutes: Option<i32>,
    pub ticket_price: Option<f64>,
    pub cost_total: Option<f64>,
    /// Income besides tickets (sponsors, stands, ...), for ROI.
    #[serde(default)]
    pub other_income: Option<f64>,
    pub currency: Option<String>,
    pub removed: bool,
    pub at: i64,
}

event_record!(CatalogueEntry, topics::CATALOGUE, "catalogue.avsc");
