//! The outbox: turns the derived topics into deliveries, one per subscribed endpoint, queued
//! in PostgreSQL in the same transaction as the topics' offsets. It runs on the runtime's
//! projection worker, so a record becomes its deliveries exactly once, whatever crashes; and one whose
//! values PostgreSQL refuses (a NUL in a message, which jsonb cannot hold) is isolated and
//! dead-lettered there while the rest of its batch is delivered.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use muster_runtime::projection::{Projection, Rejected, Target, ts};
use muster_schemas::{Alert, AlertAction, Codec, NormalizedMetrics, ServiceHealth, TopicRecord};
use serde_json::Value;
use tokio_postgres::Transaction;

use crate::EventType;
use crate::payloads::{
    AlertChanged, AttendanceUpdated, Data, HealthChanged, Message, StatusChanged,
};

/// Something that happened to an event, before it is addressed to endpoints (its data is
/// numbered 0 until then).
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub at: DateTime<Utc>,
    pub data: Data,
}

impl Occurrence {
    pub fn kind(&self) -> EventType {
        self.data.kind()
    }

    pub fn event_id(&self) -> &str {
        self.data.event_id()
    }
}

/// What the outbox remembers per event to tell changes from repeats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventState {
    pub status: Option<String>,
    pub last_attendance_at: Option<DateTime<Utc>>,
}

/// The pure part: the occurrences a normalized snapshot makes, given what came before.
pub fn from_metrics(
    m: &NormalizedMetrics,
    state: &mut EventState,
    attendance_every: chrono::Duration,
) -> Vec<Occurrence> {
    let at = ts(m.timestamp);
    let mut out = Vec::new();
    if state.status.as_deref() != Some(m.status.as_str()) {
        out.push(Occurrence {
            at,
            data: Data::StatusChanged(StatusChanged {
                event_id: m.event_id.clone(),
                sequence: 0,
                previous: state.status.clone(),
                current: m.status.clone(),
            }),
        });
        state.status = Some(m.status.clone());
    }
    let due = state
        .last_attendance_at
        .is_none_or(|last| at - last >= attendance_every);
    if due {
        out.push(Occurrence {
            at,
            data: Data::AttendanceUpdated(AttendanceUpdated {
                event_id: m.event_id.clone(),
                sequence: 0,
                total_registered: m.total_registered,
                current_attendees: m.current_attendees,
                attendance_rate: m.attendance_rate,
                capacity: m.capacity,
                status: m.status.clone(),
            }),
        });
        state.last_attendance_at = Some(at);
    }
    out
}

pub fn from_alert(a: &Alert) -> Occurrence {
    let change = AlertChanged {
        event_id: a.event_id.clone(),
        sequence: 0,
        alert_id: a.alert_id.clone(),
        kind: a.kind,
        subject: a.subject.clone(),
        severity: a.severity,
        message: a.message.clone(),
        raised_at: ts(a.raised_at),
        duration_ms: a.duration_ms,
    };
    Occurrence {
        at: ts(a.at),
        data: match a.action {
            AlertAction::Raised => Data::AlertRaised(change),
            AlertAction::Resolved => Data::AlertResolved(change),
        },
    }
}

pub fn from_health(h: &ServiceHealth) -> Occurrence {
    Occurrence {
        at: ts(h.at),
        data: Data::HealthChanged(HealthChanged {
            event_id: h.event_id.clone(),
            sequence: 0,
            service_name: h.service_name.clone(),
            previous: h.previous,
            current: h.current,
            reason: h.reason.clone(),
            consecutive_failures: h.consecutive_failures,
        }),
    }
}

/// The message body partners receive for `o`, numbered `sequence` for its endpoint.
pub fn payload(o: &Occurrence, sequence: i64) -> Value {
    Message {
        kind: o.kind(),
        timestamp: o.at,
        data: &o.data.numbered(sequence),
    }
    .to_json()
}

/// An endpoint as the outbox addresses it.
struct Subscriber {
    endpoint_id: String,
    event_types: Vec<String>,
    event_ids: Vec<String>,
}

impl Subscriber {
    fn wants(&self, o: &Occurrence) -> bool {
        self.event_ids.iter().any(|e| e == o.event_id())
            && self.event_types.iter().any(|t| t == o.kind().as_str())
    }
}

pub struct Outbox {
    pub attendance_every: chrono::Duration,
}

#[async_trait]
impl Projection for Outbox {
    fn name(&self) -> &'static str {
        "webhook_outbox"
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![NormalizedMetrics::TOPIC, Alert::TOPIC, ServiceHealth::TOPIC]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["webhook_event_state"]
    }

    /// Its tables are the `webhooks` migrations' (an outbox is never replayed into a fresh
    /// schema: that would send everything again).
    fn migrations(&self) -> &'static [&'static str] {
        &[]
    }

    async fn apply(&self, at: Target<'_>, codec: &Codec) -> anyhow::Result<Vec<Rejected>> {
        let Target { tx, batch, .. } = at;
        let mut rejected = Vec::new();
        let mut metrics = Vec::new();
        let mut occurrences = Vec::new();
        for (index, r) in batch.iter().enumerate() {
            let decoded: Result<(), muster_schemas::CodecError> = async {
                let topics = codec.topics();
                if topics.is::<NormalizedMetrics>(&r.topic) {
                    metrics.push(codec.decode::<NormalizedMetrics>(&r.payload).await?)
                } else if topics.is::<Alert>(&r.topic) {
                    occurrences.push(from_alert(&codec.decode::<Alert>(&r.payload).await?))
                } else {
                    occurrences.push(from_health(
                        &codec.decode::<ServiceHealth>(&r.payload).await?,
                    ))
                }
                Ok(())
            }
            .await;
            match decoded {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => rejected.push(Rejected {
                    index,
                    reason: e.to_string(),
                    event_id: None,
                }),
            }
        }
        if !metrics.is_empty() {
            let mut ids: Vec<String> = metrics.iter().map(|m| m.event_id.clone()).collect();
            ids.sort();
            ids.dedup();
            let mut states: HashMap<String, EventState> = HashMap::new();
            for row in tx
                .query(
                    "SELECT event_id, status, last_attendance_at FROM webhook_event_state
                     WHERE event_id = ANY($1) FOR UPDATE",
                    &[&ids],
                )
                .await?
            {
                states.insert(
                    row.get(0),
                    EventState {
                        status: row.get(1),
                        last_attendance_at: row.get(2),
                    },
                );
            }
            for m in &metrics {
                let state = states.entry(m.event_id.clone()).or_default();
                occurrences.extend(from_metrics(m, state, self.attendance_every));
            }
            for (id, st) in &states {
                tx.execute(
                    "INSERT INTO webhook_event_state (event_id, status, last_attendance_at)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (event_id) DO UPDATE SET status = excluded.status,
                        last_attendance_at = excluded.last_attendance_at",
                    &[id, &st.status, &st.last_attendance_at],
                )
                .await?;
            }
        }
        if occurrences.is_empty() {
            return Ok(rejected);
        }
        // Time order within the batch (topics interleave), kept stable for equal times.
        occurrences.sort_by_key(|o| o.at);
        enqueue(tx, &occurrences).await?;
        Ok(rejected)
    }
}

/// Addresses occurrences to the endpoints that want them, numbering each endpoint's deliveries
/// per event.
async fn enqueue(tx: &Transaction<'_>, occurrences: &[Occurrence]) -> anyhow::Result<()> {
    let subscribers: Vec<Subscriber> = tx
        .query(
            "SELECT e.endpoint_id, e.event_types, p.event_ids
             FROM webhook_endpoints e JOIN partners p USING (partner_id)
             WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL AND p.revoked_at IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| Subscriber {
            endpoint_id: r.get(0),
            event_types: r.get(1),
            event_ids: r.get(2),
        })
        .collect();
    let mut rows: Vec<(&Subscriber, &Occurrence)> = Vec::new();
    for o in occurrences {
        for s in subscribers.iter().filter(|s| s.wants(o)) {
            rows.push((s, o));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    // Sequence numbers: locked per (endpoint, event), bumped in memory, written back once.
    let mut next: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (s, o) in &rows {
        next.entry((s.endpoint_id.clone(), o.event_id().to_owned()))
            .or_insert(0);
    }
    let (eps, evs): (Vec<String>, Vec<String>) = next.keys().cloned().unzip();
    tx.execute(
        "INSERT INTO webhook_sequences (endpoint_id, event_id, last_seq)
         SELECT * FROM unnest($1::text[], $2::text[], array_fill(0::bigint, ARRAY[cardinality($1)]))
         ON CONFLICT DO NOTHING",
        &[&eps, &evs],
    )
    .await?;
    for r in tx
        .query(
            "SELECT s.endpoint_id, s.event_id, s.last_seq FROM webhook_sequences s
             JOIN unnest($1::text[], $2::text[]) AS k(endpoint_id, event_id)
               USING (endpoint_id, event_id)
             ORDER BY 1, 2 FOR UPDATE OF s",
            &[&eps, &evs],
        )
        .await?
    {
        next.insert((r.get(0), r.get(1)), r.get(2));
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut endpoints = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    let mut types = Vec::with_capacity(rows.len());
    let mut ats = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    for (s, o) in rows {
        let seq = next
            .get_mut(&(s.endpoint_id.clone(), o.event_id().to_owned()))
            .expect("every pair was inserted");
        *seq += 1;
        ids.push(crate::new_message_id());
        endpoints.push(s.endpoint_id.clone());
        events.push(o.event_id().to_owned());
        seqs.push(*seq);
        types.push(o.kind().as_str());
        ats.push(o.at);
        payloads.push(payload(o, *seq));
    }
    tx.execute(
        "INSERT INTO webhook_deliveries (delivery_id, message_id, endpoint_id, event_id, seq,
            event_type, occurred_at, payload, state, next_attempt_at)
         SELECT d, d, e, ev, s, t, a, p, 'pending', now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                     $6::timestamptz[], $7::jsonb[]) AS x(d, e, ev, s, t, a, p)",
        &[&ids, &endpoints, &events, &seqs, &types, &ats, &payloads],
    )
    .await?;
    let (eps, rest): (Vec<String>, Vec<(String, i64)>) =
        next.into_iter().map(|((ep, ev), s)| (ep, (ev, s))).unzip();
    let (evs, last): (Vec<String>, Vec<i64>) = rest.into_iter().unzip();
    tx.execute(
        "UPDATE webhook_sequences s SET last_seq = k.last
         FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(endpoint_id, event_id, last)
         WHERE s.endpoint_id = k.endpoint_id AND s.event_id = k.event_id",
        &[&eps, &evs, &last],
    )
    .await?;
    metrics::counter!("muster_webhook_deliveries_enqueued_total").increment(ids.len() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(status: &str, t: i64, current: i64) -> NormalizedMetrics {
        NormalizedMetrics {
            status: status.into(),
            ..NormalizedMetrics::live("e", t, 100, current, 0)
        }
    }

    #[test]
    fn attendance_is_throttled_and_status_changes_once() {
        let every = chrono::Duration::seconds(30);
        let mut st = EventState::default();
        let kinds = |v: Vec<Occurrence>| v.into_iter().map(|o| o.kind()).collect::<Vec<_>>();
        assert_eq!(
            kinds(from_metrics(&m("live", 0, 1), &mut st, every)),
            [EventType::StatusChanged, EventType::AttendanceUpdated]
        );
        assert!(from_metrics(&m("live", 10_000, 2), &mut st, every).is_empty());
        assert_eq!(
            kinds(from_metrics(&m("degraded", 20_000, 3), &mut st, every)),
            [EventType::StatusChanged]
        );
        assert_eq!(
            kinds(from_metrics(&m("degraded", 30_000, 4), &mut st, every)),
            [EventType::AttendanceUpdated]
        );
    }

    #[test]
    fn payloads_carry_the_event_and_its_sequence() {
        let o = Occurrence {
            at: ts(1_000),
            data: Data::example(EventType::AlertRaised),
        };
        let p = payload(&o, 7);
        assert_eq!(p["type"], "alert.raised");
        assert_eq!(p["timestamp"], "1970-01-01T00:00:01Z");
        assert_eq!(p["data"]["eventId"], o.event_id());
        assert_eq!(p["data"]["sequence"], 7);
        assert_eq!(p["data"]["alertId"], "expo-2026:gate-down:G3");
        assert!(p["data"]["durationMs"].is_null());
    }
}
