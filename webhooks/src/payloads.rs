//! What partners receive, as types: each event type's `data` is a struct here, and both the
//! delivered JSON (serde) and the catalogue's JSON Schema (utoipa) come from it, so the
//! catalogue cannot drift from what is sent. `deny_unknown_fields` makes each schema say
//! `additionalProperties: false`; fields that are sent as `null` are still `required`.

use chrono::{DateTime, TimeZone, Utc};
use muster_schemas::{AlertKind, Health, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::EventType;

/// `attendance.updated`: an event's latest numbers (at most one per `attendance_every`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttendanceUpdated {
    pub event_id: String,
    /// Per endpoint and event, from 1: a receiver puts late deliveries in place with it.
    pub sequence: i64,
    pub total_registered: i64,
    pub current_attendees: i64,
    pub attendance_rate: f64,
    #[schema(required = true)]
    pub capacity: Option<i64>,
    pub status: String,
}

/// `event.status_changed`: the event's status moved (`previous` is null the first time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusChanged {
    pub event_id: String,
    pub sequence: i64,
    #[schema(required = true)]
    pub previous: Option<String>,
    pub current: String,
}

/// `alert.raised` and `alert.resolved`: an alert's change (`durationMs` on a resolve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertChanged {
    pub event_id: String,
    pub sequence: i64,
    pub alert_id: String,
    #[schema(schema_with = alert_kind)]
    pub kind: AlertKind,
    #[schema(required = true)]
    pub subject: Option<String>,
    #[schema(schema_with = severity)]
    pub severity: Severity,
    pub message: String,
    pub raised_at: DateTime<Utc>,
    #[schema(required = true)]
    pub duration_ms: Option<i64>,
}

/// `service.health_changed`: an upstream service's health moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthChanged {
    pub event_id: String,
    pub sequence: i64,
    pub service_name: String,
    #[schema(schema_with = previous_health, required = true)]
    pub previous: Option<Health>,
    #[schema(schema_with = health)]
    pub current: Health,
    pub reason: String,
    pub consecutive_failures: i32,
}

fn text_enum(values: impl IntoIterator<Item = &'static str>, nullable: bool) -> RefOr<Schema> {
    let mut values: Vec<Value> = values.into_iter().map(Value::from).collect();
    let kind = if nullable {
        values.push(Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(values))
        .into()
}

fn alert_kind() -> RefOr<Schema> {
    text_enum(AlertKind::ALL.iter().map(|k| k.as_str()), false)
}

fn severity() -> RefOr<Schema> {
    text_enum(Severity::ALL.iter().map(|s| s.as_str()), false)
}

fn health() -> RefOr<Schema> {
    text_enum(Health::ALL.iter().map(|h| h.as_str()), false)
}

fn previous_health() -> RefOr<Schema> {
    text_enum(Health::ALL.iter().map(|h| h.as_str()), true)
}

/// A message's `data`, one variant per event type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Data {
    AttendanceUpdated(AttendanceUpdated),
    StatusChanged(StatusChanged),
    AlertRaised(AlertChanged),
    AlertResolved(AlertChanged),
    HealthChanged(HealthChanged),
}

impl Data {
    pub fn kind(&self) -> EventType {
        match self {
            Self::AttendanceUpdated(_) => EventType::AttendanceUpdated,
            Self::StatusChanged(_) => EventType::StatusChanged,
            Self::AlertRaised(_) => EventType::AlertRaised,
            Self::AlertResolved(_) => EventType::AlertResolved,
            Self::HealthChanged(_) => EventType::HealthChanged,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Self::AttendanceUpdated(d) => &d.event_id,
            Self::StatusChanged(d) => &d.event_id,
            Self::AlertRaised(d) | Self::AlertResolved(d) => &d.event_id,
            Self::HealthChanged(d) => &d.event_id,
        }
    }

    /// The same data numbered `sequence` for one endpoint.
    pub fn numbered(&self, sequence: i64) -> Self {
        let mut d = self.clone();
        match &mut d {
            Self::AttendanceUpdated(d) => d.sequence = sequence,
            Self::StatusChanged(d) => d.sequence = sequence,
            Self::AlertRaised(d) | Self::AlertResolved(d) => d.sequence = sequence,
            Self::HealthChanged(d) => d.sequence = sequence,
        }
        d
    }

    /// The JSON Schema of this type's `data`, inline.
    fn schema(kind: EventType) -> Value {
        let schema = match kind {
            EventType::AttendanceUpdated => AttendanceUpdated::schema(),
            EventType::StatusChanged => StatusChanged::schema(),
            EventType::AlertRaised | EventType::AlertResolved => AlertChanged::schema(),
            EventType::HealthChanged => HealthChanged::schema(),
        };
        serde_json::to_value(schema).expect("a schema serializes")
    }

    /// A made-up example of `kind`, for the catalogue and test sends.
    pub fn example(kind: EventType) -> Self {
        let event_id = "expo-2026".to_owned();
        let alert = |resolved: bool| AlertChanged {
            event_id: event_id.clone(),
            sequence: 1,
            alert_id: "expo-2026:gate-down:G3".into(),
            kind: AlertKind::GateDown,
            subject: Some("G3".into()),
            severity: Severity::Warning,
            message: "Gate G3 has reported no check-ins for 10 minutes".into(),
            raised_at: example_time(),
            duration_ms: resolved.then_some(600_000),
        };
        match kind {
            EventType::AttendanceUpdated => Self::AttendanceUpdated(AttendanceUpdated {
                event_id,
                sequence: 1,
                total_registered: 12_000,
                current_attendees: 8_450,
                attendance_rate: 0.704,
                capacity: Some(10_000),
                status: "live".into(),
            }),
            EventType::StatusChanged => Self::StatusChanged(StatusChanged {
                event_id,
                sequence: 1,
                previous: Some("scheduled".into()),
                current: "live".into(),
            }),
            EventType::AlertRaised => Self::AlertRaised(alert(false)),
            EventType::AlertResolved => Self::AlertResolved(alert(true)),
            EventType::HealthChanged => Self::HealthChanged(HealthChanged {
                event_id,
                sequence: 1,
                service_name: "gates".into(),
                previous: Some(Health::Healthy),
                current: Health::Down,
                reason: "HTTP 500 on 3 polls in a row".into(),
                consecutive_failures: 3,
            }),
        }
    }
}

fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0)
        .single()
        .expect("a valid time")
}

/// The message body partners receive, Standard Webhooks' shape: `type`, `timestamp`, `data`
/// (with the event id and the endpoint's sequence number for that event).
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub timestamp: DateTime<Utc>,
    pub data: &'a Data,
}

impl Message<'_> {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a message serializes")
    }

    /// The JSON Schema of a whole message of `kind`, self-contained (no `$ref`): the
    /// envelope [`Message`] writes, with `data` as the type's own schema.
    pub fn schema(kind: EventType) -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": kind.as_str(),
            "type": "object",
            "additionalProperties": false,
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"type": "string", "const": kind.as_str()},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": Data::schema(kind),
            },
        })
    }
}

/// One entry of the event-type catalogue (`GET /api/partner/webhooks/event-types`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeInfo {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub description: String,
    /// The JSON Schema (2020-12) of the whole message, self-contained.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// An example message, valid against `schema`.
    #[schema(value_type = Object)]
    pub example: Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Catalogue {
    #[serde(rename = "eventTypes")]
    pub event_types: Vec<EventTypeInfo>,
}

impl EventType {
    pub fn description(self) -> &'static str {
        match self {
            Self::AttendanceUpdated => {
                "An event's latest attendance numbers, at most once per configured interval \
                 (30 s by default) per event."
            }
            Self::AlertRaised => {
                "An alert was raised for an event: occupancy, a gate down, throughput \
                 collapse, an upstream service down, or an upstream alert."
            }
            Self::AlertResolved => "An alert was resolved; durationMs says how long it was active.",
            Self::StatusChanged => "An event's status changed (previous is null the first time).",
            Self::HealthChanged => "An upstream service of an event changed health.",
        }
    }

    /// An example message of this type, as delivered.
    pub fn example(self) -> Value {
        let data = Data::example(self);
        Message {
            kind: self,
            timestamp: example_time(),
            data: &data,
        }
        .to_json()
    }
}

/// Every event type with its description, schema and example.
pub fn catalogue() -> Catalogue {
    Catalogue {
        event_types: EventType::ALL
            .into_iter()
            .map(|t| EventTypeInfo {
                event_type: t,
                description: t.description().to_owned(),
                schema: Message::schema(t),
                example: t.example(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of `kind` read back as its type: serializing it wrote exactly the type's
    /// fields (unknown ones would be refused).
    fn round_trip(kind: EventType, data: &Value) {
        let ok = match kind {
            EventType::AttendanceUpdated => {
                serde_json::from_value::<AttendanceUpdated>(data.clone()).is_ok()
            }
            EventType::StatusChanged => {
                serde_json::from_value::<StatusChanged>(data.clone()).is_ok()
            }
            EventType::AlertRaised | EventType::AlertResolved => {
                serde_json::from_value::<AlertChanged>(data.clone()).is_ok()
            }
            EventType::HealthChanged => {
                serde_json::from_value::<HealthChanged>(data.clone()).is_ok()
            }
        };
        assert!(ok, "{kind:?}: {data}");
    }

    #[test]
    fn each_example_serializes_from_its_type_and_matches_its_schema_shape() {
        let c = catalogue();
        assert_eq!(c.event_types.len(), EventType::ALL.len());
        for e in &c.event_types {
            let example = &e.example;
            assert_eq!(example["type"], e.event_type.as_str());
            round_trip(e.event_type, &example["data"]);
            // The envelope's keys are the schema's, all required.
            let keys: Vec<&String> = example.as_object().unwrap().keys().collect();
            let props = e.schema["properties"].as_object().unwrap();
            assert_eq!(keys.len(), props.len());
            assert!(keys.iter().all(|k| props.contains_key(*k)), "{keys:?}");
            // The data's keys are the schema's, every one required, no others allowed.
            let data = &e.schema["properties"]["data"];
            assert_eq!(data["additionalProperties"], false, "{data}");
            let required: Vec<&str> = data["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let sent: Vec<&String> = example["data"].as_object().unwrap().keys().collect();
            assert_eq!(required.len(), sent.len(), "{required:?} vs {sent:?}");
            assert!(sent.iter().all(|k| required.contains(&k.as_str())));
            assert!(!e.schema.to_string().contains("$ref"), "{}", e.schema);
        }
    }

    #[test]
    fn numbering_keeps_everything_else() {
        let d = Data::example(EventType::AlertRaised);
        let n = d.numbered(7);
        assert_eq!(n.kind(), EventType::AlertRaised);
        assert_eq!(n.event_id(), d.event_id());
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["subject"], "G3");
    }
}
