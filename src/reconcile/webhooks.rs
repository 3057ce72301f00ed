//! The webhook half of a reconcile: alerts on the topic against the outbox's queue, and the
//! queue against what the simulator's receivers got.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Context;
use muster_runtime::KafkaConfig;
use muster_schemas::{Alert, AlertAction, Codec};
use muster_webhooks::EventType;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The simulator's endpoints and the messages queued for them.
    pub endpoints: usize,
    pub queued: usize,
    /// Alerts an endpoint subscribed to (raised after it was created) with no message.
    pub alerts_not_queued: usize,
    /// The same occurrence queued twice for one endpoint.
    pub queued_twice: usize,
    /// Queued messages not delivered (yet).
    pub undelivered: usize,
    /// Delivered messages the receiver has no 2xx for.
    pub delivered_unreceived: usize,
    /// Received `webhook-id`s that are no queued message's.
    pub received_unknown: usize,
    /// First arrivals out of sequence order within an (endpoint, event).
    pub out_of_order: usize,
    /// Arrivals of a message already received (same `webhook-id`: receivers dedupe them).
    pub redelivered: usize,
}

impl Report {
    pub fn doubled(&self) -> usize {
        self.queued_twice + self.received_unknown + self.out_of_order
    }

    pub fn passed(&self) -> bool {
        self.doubled() + self.alerts_not_queued + self.undelivered + self.delivered_unreceived == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} queued for {} endpoints, {} alerts not queued, {} queued twice, {} undelivered, \
             {} delivered but not received, {} unknown ids, {} out of order, {} redelivered",
            self.queued,
            self.endpoints,
            self.alerts_not_queued,
            self.queued_twice,
            self.undelivered,
            self.delivered_unreceived,
            self.received_unknown,
            self.out_of_order,
            self.redelivered
        )
    }
}

/// What a simulator receiver noted (see `simulate::receiver::Receipt`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    webhook_id: String,
    event_id: String,
    sequence: i64,
}

/// Endpoints subscribed before this many ms past their creation may miss an alert that was
/// already on its way.
const SETTLE_MS: i64 = 5_000;

pub async fn check(
    kafka: &KafkaConfig,
    codec: &Codec,
    pool: &deadpool_postgres::Pool,
    http: &reqwest::Client,
    simulator: &str,
    cut: i64,
    details: &mut Vec<String>,
) -> anyhow::Result<Report> {
    use super::detail;
    let db = pool.get().await.context("connecting to PostgreSQL")?;
    let endpoints = db
        .query(
            "SELECT e.endpoint_id, e.url, e.event_types, p.event_ids,
                    (extract(epoch FROM e.created_at) * 1000)::bigint
             FROM webhook_endpoints e JOIN partners p USING (partner_id)
             WHERE e.deleted_at IS NULL AND starts_with(e.url, $1)",
            &[&format!("{simulator}/hooks/")],
        )
        .await
        .context("reading the webhook endpoints")?;
    let mut report = Report {
        endpoints: endpoints.len(),
        ..Report::default()
    };
    if endpoints.is_empty() {
        return Ok(report);
    }
    // Read in this order, so that each is a subset of the next unless something was lost:
    // what the receivers got, the alerts, then what was queued.
    let mut received = Vec::with_capacity(endpoints.len());
    for e in &endpoints {
        let url: String = e.get(1);
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        let receipts: Vec<Receipt> = http
            .get(format!("{simulator}/hooks/{name}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .with_context(|| format!("reading receiver {name}"))?;
        received.push((name, receipts));
    }
    let alerts = super::topics::read_all::<Alert>(kafka, codec).await?;
    let ids: Vec<String> = endpoints.iter().map(|r| r.get(0)).collect();
    let queued = db
        .query(
            "SELECT message_id, endpoint_id, event_id, event_type,
                    (extract(epoch FROM occurred_at) * 1000)::bigint,
                    coalesce(payload->'data'->>'alertId', ''), state,
                    count(*) OVER (PARTITION BY endpoint_id, event_type, occurred_at,
                                   (payload->'data') - 'sequence')
             FROM webhook_deliveries
             WHERE endpoint_id = ANY($1) AND NOT test AND replay_of IS NULL",
            &[&ids],
        )
        .await
        .context("reading the queued deliveries")?;
    report.queued = queued.len();
    let queued_ids: HashSet<&str> = queued.iter().map(|q| q.get(0)).collect();
    let mut by_alert: HashSet<(String, String, String, String, i64)> = HashSet::new();
    // Delivered messages: their endpoint, event, and whether they occurred before the cut.
    let mut delivered: HashMap<String, (String, String, bool)> = HashMap::new();
    for q in &queued {
        let (message, endpoint, event): (String, String, String) = (q.get(0), q.get(1), q.get(2));
        let state: &str = q.get(6);
        report.queued_twice += usize::from(q.get::<_, i64>(7) > 1);
        // what occurred since the cut may still be on its way
        let settled = q.get::<_, i64>(4) < cut;
        if settled && state != "delivered" {
            report.undelivered += 1;
            detail(details, || format!("{state}: {message} of {event}"));
        }
        by_alert.insert((
            endpoint.clone(),
            q.get(3),
            event.clone(),
            q.get(5),
            q.get(4),
        ));
        if state == "delivered" {
            delivered.insert(message, (endpoint, event, settled));
        }
    }

    for (i, e) in endpoints.iter().enumerate() {
        let (endpoint, types, events, created): (String, Vec<String>, Vec<String>, i64) =
            (e.get(0), e.get(2), e.get(3), e.get(4));
        for a in alerts.iter().map(|a| &a.record) {
            let kind = match a.action {
                AlertAction::Raised => EventType::AlertRaised,
                AlertAction::Resolved => EventType::AlertResolved,
            }
            .as_str();
            let wanted = a.at > created + SETTLE_MS
                && a.at < cut
                && types.iter().any(|t| t == kind)
                && events.contains(&a.event_id);
            let key = (
                endpoint.clone(),
                kind.to_owned(),
                a.event_id.clone(),
                a.alert_id.clone(),
                a.at,
            );
            if wanted && !by_alert.contains(&key) {
                report.alerts_not_queued += 1;
                detail(details, || format!("not queued for {endpoint}: {key:?}"));
            }
        }

        let (name, receipts) = &received[i];
        let mut seen = HashSet::new();
        let mut last: HashMap<&str, i64> = HashMap::new();
        for r in receipts {
            if !seen.insert(r.webhook_id.as_str()) {
                report.redelivered += 1;
                continue;
            }
            match delivered.get(&r.webhook_id) {
                Some((ep, _, _)) if *ep != endpoint => report.received_unknown += 1,
                Some(_) => {}
                // received, but not (yet) marked delivered: known if queued at all
                None if queued_ids.contains(r.webhook_id.as_str()) => {}
                None => {
                    report.received_unknown += 1;
                    detail(details, || {
                        format!("received, never queued: {}", r.webhook_id)
                    });
                }
            }
            let prev = last.insert(&r.event_id, r.sequence);
            if let Some(p) = prev.filter(|p| *p >= r.sequence) {
                report.out_of_order += 1;
                detail(details, || {
                    format!(
                        "{} #{} arrived after #{p} at {name}",
                        r.event_id, r.sequence
                    )
                });
            }
        }
        for (m, (_, event, _)) in delivered.iter().filter(|(m, (ep, _, settled))| {
            *settled && *ep == endpoint && !seen.contains(m.as_str())
        }) {
            report.delivered_unreceived += 1;
            detail(details, || {
                format!("delivered, not received: {m} of {event}")
            });
        }
    }
    Ok(report)
}
