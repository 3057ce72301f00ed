//! A registered event-management service: the registration body of the admin API (the seed's
//! `EventServiceConfig`), camelCase JSON.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::Authentication;
use crate::retry::RetryPolicy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventServiceConfig {
    pub event_id: String,
    pub service_name: String,
    pub endpoints: Endpoints,
    #[serde(default)]
    pub authentication: Authentication,
    #[serde(default)]
    pub sync_settings: SyncSettings,
    #[serde(flatten)]
    pub event: EventMetadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoints {
    /// Base URL; snapshots are read from `{api}/analytics/realtime`.
    pub api: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Seconds between two polls.
    pub interval: u64,
    pub retry_policy: RetryPolicy,
    /// The upstream body's format; picks the normalizer downstream.
    pub data_schema: String,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            interval: 30,
            retry_policy: RetryPolicy::default(),
            data_schema: "s-attend/v1".into(),
        }
    }
}

impl SyncSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval.max(1))
    }
}

/// What analytics and the public catalogue know about the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_total: Option<f64>,
    /// Income besides tickets (sponsors, stands, ...), for ROI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_income: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl EventServiceConfig {
    /// The catalogue's view of this registration (no endpoints, no credentials).
    pub fn catalogue_entry(&self, at: i64) -> muster_schemas::CatalogueEntry {
        let e = &self.event;
        muster_schemas::CatalogueEntry {
            event_id: self.event_id.clone(),
            service_name: self.service_name.clone(),
            name: e.name.clone(),
            event_type: e.event_type.clone(),
            venue: e.venue.clone(),
            capacity: e.capacity,
            starts_at: e.starts_at.map(|t| t.timestamp_millis()),
            ends_at: e.ends_at.map(|t| t.timestamp_millis()),
            utc_offset_minutes: e.starts_at.map(|t| t.offset().local_minus_utc() / 60),
            ticket_price: e.ticket_price,
            cost_total: e.cost_total,
            other_income: e.other_income,
            currency: e.currency.clone(),
            removed: false,
            at,
        }
    }

    /// Checks what serde cannot: names the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.event_id.trim().is_empty() {
            return Err("eventId must not be empty".into());
        }
        if !self
            .event_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "eventId {:?} may only contain letters, digits, '-', '_' and '.'",
                self.event_id
            ));
        }
        let url = &self.endpoints.api;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("endpoints.api {url:?} must be an http(s) URL"));
        }
        if let Some(h) = &self.endpoints.health_check
            && !(h.starts_with("http://") || h.starts_with("https://"))
        {
            return Err(format!(
                "endpoints.healthCheck {h:?} must be an http(s) URL"
            ));
        }
        self.authentication.validate()?;
        if self.sync_settings.interval == 0 {
            return Err("syncSettings.interval must be at least 1 second".into());
        }
        self.sync_settings.retry_policy.validate()
    }

    /// `endpoints.healthCheck`, or `{api}/health` when the registration names none.
    pub fn health_url(&self) -> String {
        self.endpoints
            .health_check
            .clone()
            .unwrap_or_else(|| format!("{}/health", self.endpoints.api.trim_end_matches('/')))
    }

    pub fn realtime_url(&self) -> String {
        format!(
            "{}/analytics/realtime",
            self.endpoints.api.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_shape_with_defaults() {
        let cfg: EventServiceConfig = serde_json::from_value(serde_json::json!({
            "eventId": "expo-2026",
            "serviceName": "s-attend",
            "endpoints": {"api": "http://127.0.0.1:9100/events/expo-2026", "healthCheck": "http://h/health"},
            "authentication": {"type": "api_key", "credentials": {"key": "k"}},
            "syncSettings": {"interval": 5},
            "name": "Expo", "type": "exhibition", "capacity": 3000,
            "startsAt": "2026-11-24T09:00:00+09:00"
        }))
        .unwrap();
        assert_eq!(cfg.sync_settings.data_schema, "s-attend/v1");
        assert_eq!(cfg.sync_settings.interval(), Duration::from_secs(5));
        assert_eq!(cfg.event.event_type, "exhibition");
        assert_eq!(format!("{:?}", cfg.authentication), "api_key(***)");
        assert!(cfg.validate().is_ok());
        assert_eq!(
            cfg.realtime_url(),
            "http://127.0.0.1:9100/events/expo-2026/analytics/realtime"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg: EventServiceConfig = serde_json::from_value(serde_json::json!({
            "eventId": "a b", "serviceName": "s", "endpoints": {"api": "ftp://x"}
        }))
        .unwrap();
        assert!(cfg.validate().unwrap_err().contains("eventId"));
        cfg.event_id = "ok".into();
        assert!(cfg.validate().unwrap_err().contains("endpoints.api"));
    }
}
