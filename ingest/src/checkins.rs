//! Check-ins pushed by a service: signed with the service's webhook secret (Standard Webhooks),
//! participant ids pseudonymized before anything is written, published to the raw topic.
//! A delivery id is accepted once; replays and tampered requests are refused.

use std::time::Duration;

use anyhow::Context;
use muster_runtime::batch::{OutRecord, produce_all};
use muster_runtime::secrets::Secrets;
use muster_runtime::signature::{self, SignatureError};
use muster_schemas::records::now_millis;
use muster_schemas::{Direction, RawCheckin};
use serde::Deserialize;

use crate::collector::Collector;
use crate::service_table;

/// How long a request waits for Kafka to take its check-ins before answering `503`.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after that an unpublished claim counts as abandoned: past the producer's
/// `message.timeout.ms`, so records that did land are not published twice.
const CLAIM_MARGIN: Duration = Duration::from_secs(300);

/// Most check-ins one request may carry.
pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CheckinError {
    #[error("no service is registered for event {0}")]
    UnknownEvent(String),
    #[error("signature refused: {0}")]
    Unauthorized(#[from] SignatureError),
    #[error("delivery {0} was already accepted")]
    Replay(String),
    #[error("delivery {0} is still being published (Kafka is slow or down): retry later")]
    InFlight(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// The Standard Webhooks headers of a request.
pub struct Signed<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Checkin {
    gate_id: String,
    participant_id: String,
    direction: Direction,
    scanned_at: chrono::DateTime<chrono::FixedOffset>,
}

/// Parses a single check-in or an array of them; the first bad one is named by its index.
fn parse(body: &[u8]) -> Result<Vec<Checkin>, String> {
    let now = chrono::Utc::now();
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one @ serde_json::Value::Object(_) => vec![one],
        _ => return Err("body must be a check-in object or an array of them".into()),
    };
    if items.is_empty() {
        return Err("no check-ins in the body".into());
    }
    if items.len() > MAX_BATCH {
        return Err(format!("at most {MAX_BATCH} check-ins per request"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let c: Checkin =
                serde_json::from_value(v).map_err(|e| format!("check-in [{i}]: {e}"))?;
            if c.gate_id.is_empty() || c.participant_id.is_empty() {
                return Err(format!(
                    "check-in [{i}]: gateId and participantId must not be empty"
                ));
            }
            // PostgreSQL refuses NUL in text: accepted, it would stall every projection of it.
            for (field, value) in [("gateId", &c.gate_id), ("participantId", &c.participant_id)] {
                if value.contains('\0') {
                    return Err(format!(
                        "check-in [{i}]: {field} must not contain a NUL character"
                    ));
                }
            }
            // Refused at the door, the sender learns it; published, it would only become a
            // dead letter downstream.
            let clock = Some((now.timestamp_millis(), "muster's clock"));
            if let Some(why) = muster_schemas::time::implausible(
                "scannedAt",
                c.scanned_at.timestamp_millis(),
                clock,
            ) {
                return Err(format!("check-in [{i}]: {why}"));
            }
            Ok(c)
        })
        .collect()
}

#[derive(Clone)]
pub struct Receiver {
    pub collector: Collector,
    pub pool: deadpool_postgres::Pool,
    pub secrets: Secrets,
    /// How far `webhook-timestamp` may be from now.
    pub tolerance: Duration,
}

impl Receiver {
    /// Verifies, pseudonymizes and publishes; returns how many check-ins were accepted.
    pub async fn accept(
        &self,
        event_id: &str,
        signed: Signed<'_>,
        body: &[u8],
    ) -> Result<usize, CheckinError> {
        let id = signed
            .id
            .ok_or(SignatureError::MissingHeader("webhook-id"))?;
        let timestamp = signed
            .timestamp
            .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
        let sig = signed
            .signature
            .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
        let client = self.pool.get().await.context("connecting to PostgreSQL")?;
        let service = service_table::load(&**client, &self.secrets, event_id)
            .await?
            .ok_or_else(|| CheckinError::UnknownEvent(event_id.to_owned()))?;
        signature::verify(
            &[&service.webhook_secret],
            id,
            timestamp,
            sig,
            body,
            chrono::Utc::now().timestamp(),
            self.tolerance.as_secs() as i64,
        )?;
        let checkins = parse(body).map_err(CheckinError::Invalid)?;

        // The delivery id is claimed (committed at once), then published, then marked
        // published: no connection or transaction is held while Kafka is waited on. A replay
        // of a published delivery is refused; one of a delivery still in flight is told to
        // come back; a claim whose publisher died is taken over once it is stale.
        let stale = (PUBLISH_TIMEOUT + CLAIM_MARGIN).as_secs_f64();
        let claimed = client
            .execute(
                "INSERT INTO checkin_deliveries (event_id, delivery_id, published)
                 VALUES ($1, $2, false)
                 ON CONFLICT (event_id, delivery_id) DO UPDATE SET received_at = now()
                 WHERE NOT checkin_deliveries.published
                   AND checkin_deliveries.received_at < now() - make_interval(secs => $3)",
                &[&event_id, &id, &stale],
            )
            .await
            .context("claiming the delivery")?;
        if claimed == 0 {
            let published: Option<bool> = client
                .query_opt(
                    "SELECT published FROM checkin_deliveries WHERE event_id = $1 AND delivery_id = $2",
                    &[&event_id, &id],
                )
                .await
                .context("reading the delivery")?
                .map(|r| r.get(0));
            return Err(match published {
                Some(false) => CheckinError::InFlight(id.to_owned()),
                _ => CheckinError::Replay(id.to_owned()),
            });
        }
        drop(client);

        match tokio::time::timeout(PUBLISH_TIMEOUT, self.publish(event_id, id, &checkins)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // Kafka refused for good: free the id so the sender's retry is taken.
                let client = self.pool.get().await.context("connecting to PostgreSQL")?;
                client
                    .execute(
                        "DELETE FROM checkin_deliveries
                         WHERE event_id = $1 AND delivery_id = $2 AND NOT published",
                        &[&event_id, &id],
                    )
                    .await
                    .context("releasing the delivery")?;
                return Err(CheckinError::Unavailable(e));
            }
            // The records may still land: the claim stays until it is stale, so a retry
            // meanwhile is told to come back rather than published twice.
            Err(_) => return Err(CheckinError::InFlight(id.to_owned())),
        }
        let client = self.pool.get().await.context("connecting to PostgreSQL")?;
        client
            .execute(
                "UPDATE checkin_deliveries SET published = true
                 WHERE event_id = $1 AND delivery_id = $2",
                &[&event_id, &id],
            )
            .await
            .context("recording the delivery")?;
        client
            .execute(
                "DELETE FROM checkin_deliveries WHERE event_id = $1
                 AND received_at < now() - interval '1 day'",
                &[&event_id],
            )
            .await
            .context("pruning old deliveries")?;
        metrics::counter!("muster_ingest_checkins_total").increment(checkins.len() as u64);
        Ok(checkins.len())
    }

    /// Pseudonymizes and publishes a delivery's check-ins, waiting for Kafka's acks.
    async fn publish(
        &self,
        event_id: &str,
        delivery_id: &str,
        checkins: &[Checkin],
    ) -> anyhow::Result<()> {
        let received_at = now_millis();
        let topic = self.collector.codec.topics().of::<RawCheckin>();
        let mut records = Vec::with_capacity(checkins.len());
        for c in checkins {
            let record = RawCheckin {
                event_id: event_id.to_owned(),
                gate_id: c.gate_id.clone(),
                participant: self.secrets.pseudonymize(&c.participant_id),
                direction: c.direction,
                scanned_at: c.scanned_at.timestamp_millis(),
                received_at,
                delivery_id: delivery_id.to_owned(),
            };
            let payload = self
                .collector
                .codec
                .encode(&record)
                .await
                .context("encoding a check-in")?;
            records.push(OutRecord {
                topic: topic.clone(),
                key: Some(event_id.to_owned()),
                payload,
            });
        }
        produce_all(&self.collector.producer, &records)
            .await
            .context("publishing check-ins")
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_batch_bodies_parse() {
        let one = br#"{"gateId":"G1","participantId":"P1","direction":"in","scannedAt":"2026-11-24T10:00:00+09:00"}"#;
        assert_eq!(parse(one).unwrap().len(), 1);
        let many = format!(
            "[{},{}]",
            std::str::from_utf8(one).unwrap(),
            std::str::from_utf8(one).unwrap()
        );
        assert_eq!(parse(many.as_bytes()).unwrap().len(), 2);
    }

    /// `Checkin` has no `Debug` on purpose (it holds a raw participant id), hence no unwrap_err.
    fn error_of(body: &[u8]) -> String {
        match parse(body) {
            Err(e) => e,
            Ok(_) => panic!("{} should not parse", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        assert!(error_of(b"nope").contains("not JSON"));
        assert!(error_of(b"[]").contains("no check-ins"));
        let bad = br#"[{"gateId":"G1","participantId":"P1","direction":"sideways","scannedAt":"2026-11-24T10:00:00Z"}]"#;
        assert!(error_of(bad).contains("[0]"));
        let no_time = br#"{"gateId":"G1","participantId":"P1","direction":"in"}"#;
        assert!(error_of(no_time).contains("scannedAt"));
    }

    #[test]
    fn nul_characters_are_refused_naming_the_field() {
        let gate = br#"[{"gateId":"G1","participantId":"P1","direction":"in","scannedAt":"2026-11-24T10:00:00Z"},
                        {"gateId":"G\u00001","participantId":"P1","direction":"in","scannedAt":"2026-11-24T10:00:00Z"}]"#;
        assert_eq!(
            error_of(gate),
            "check-in [1]: gateId must not contain a NUL character"
        );
        let participant = br#"{"gateId":"G1","participantId":"\u0000","direction":"in","scannedAt":"2026-11-24T10:00:00Z"}"#;
        assert!(error_of(participant).contains("participantId"));
    }
}
