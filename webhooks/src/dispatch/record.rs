//! Recording attempts: every attempt that finished since the dispatcher's last write, with its
//! delivery's new state and its endpoint's failure clock, in one statement (one round trip,
//! one commit) however many there are.

use std::time::Duration;

use anyhow::Context;

use muster_runtime::pg::unflushed;

use super::{Claimed, Dispatcher, Next, Outcome, disable, next_step};
use crate::config::WebhooksConfig;
use crate::log::DeliveryState;

/// A claimed delivery once its attempt ended, or without one (its endpoint was disabled or
/// deleted, or its partner revoked, after it was queued).
#[derive(Debug)]
pub(super) enum Finished {
    Attempted {
        delivery: Claimed,
        outcome: Outcome,
        latency: Duration,
    },
    Skipped(Claimed),
}

/// What one write records: the columns of its `unnest` and each endpoint's verdict.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Batch {
    ids: Vec<String>,
    attempts: Vec<i32>,
    statuses: Vec<Option<i32>>,
    errors: Vec<Option<String>>,
    latencies: Vec<i32>,
    states: Vec<&'static str>,
    waits: Vec<Option<f64>>,
    /// Endpoints that answered 2xx: working, whatever else of theirs failed in the batch.
    succeeded: Vec<String>,
    /// Endpoints with only failures in the batch: their failure clocks start (or run on).
    failed: Vec<String>,
    /// Endpoints that answered 410 Gone, with the reason they are disabled.
    gone: Vec<(String, String)>,
    /// Deliveries not attempted: failed for good (they can be replayed once enabled again).
    skipped: Vec<String>,
}

impl Batch {
    /// The pure part: each attempt's next step, as columns.
    pub(super) fn plan(done: &[Finished], cfg: &WebhooksConfig) -> Self {
        let mut b = Batch::default();
        for f in done {
            let (d, outcome, latency) = match f {
                Finished::Skipped(d) => {
                    b.skipped.push(d.delivery_id.clone());
                    continue;
                }
                Finished::Attempted {
                    delivery,
                    outcome,
                    latency,
                } => (delivery, outcome, latency),
            };
            let attempts = d.attempts as usize + 1;
            let schedule: Vec<u32> = d.schedule.as_ref().map_or_else(
                || cfg.retry_schedule_secs.clone(),
                |s| s.iter().map(|x| (*x).max(0) as u32).collect(),
            );
            let next = next_step(outcome, attempts, &schedule, cfg.jitter);
            let (status, error) = match outcome {
                Outcome::Delivered(s) => (Some(*s as i32), None),
                Outcome::Refused { status, .. } => (Some(*status as i32), None),
                Outcome::Failed(e) => (None, Some(e.clone())),
            };
            let (state, wait) = match &next {
                Next::Done => (DeliveryState::Delivered, None),
                Next::Retry(wait) => (DeliveryState::Pending, Some(wait.as_secs_f64())),
                Next::GiveUp | Next::DisableEndpoint(_) => (DeliveryState::Failed, None),
            };
            match next {
                Next::Done => b.succeeded.push(d.endpoint_id.clone()),
                Next::DisableEndpoint(reason) => b.gone.push((d.endpoint_id.clone(), reason)),
                Next::Retry(_) | Next::GiveUp => b.failed.push(d.endpoint_id.clone()),
            }
            b.ids.push(d.delivery_id.clone());
            b.attempts.push(attempts as i32);
            b.statuses.push(status);
            b.errors.push(error);
            b.latencies
                .push(latency.as_millis().min(i32::MAX as u128) as i32);
            b.states.push(state.as_str());
            b.waits.push(wait);
            let label = match outcome {
                Outcome::Delivered(_) => "delivered",
                Outcome::Refused { .. } => "refused",
                Outcome::Failed(_) => "failed",
            };
            metrics::counter!("muster_webhook_attempts_total", "outcome" => label).increment(1);
            metrics::histogram!("muster_webhook_attempt_seconds").record(latency.as_secs_f64());
        }
        b.succeeded.sort();
        b.succeeded.dedup();
        b.failed.retain(|e| !b.succeeded.contains(e));
        b.failed.sort();
        b.failed.dedup();
        b
    }
}

/// The attempt log, the deliveries' states and next attempts, the skipped deliveries and the
/// endpoints' failure clocks; answers the failing endpoints with whether they have failed
/// for longer than allowed (`$10` seconds).
const RECORD: &str = "WITH x AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::float8[], $5::int[],
                             $6::text[], $7::int[]) AS x(d, st, a, wait, s, e, l)),
     logged AS (
        INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, latency_ms)
        SELECT d, a, now(), s, e, l FROM x
        ON CONFLICT DO NOTHING),
     moved AS (
        UPDATE webhook_deliveries w SET state = x.st, attempts = x.a, leased_until = NULL,
            next_attempt_at = CASE WHEN x.wait IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => x.wait) END,
            last_attempt_at = now(), last_status = x.s, last_error = x.e,
            last_latency_ms = x.l
        FROM x WHERE w.delivery_id = x.d),
     skipped AS (
        UPDATE webhook_deliveries SET state = 'failed', leased_until = NULL,
            next_attempt_at = NULL, last_error = 'the endpoint is disabled or deleted'
        WHERE delivery_id = ANY($11)),
     working AS (
        UPDATE webhook_endpoints SET failing_since = NULL
        WHERE endpoint_id = ANY($8) AND failing_since IS NOT NULL)
     UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())
     WHERE endpoint_id = ANY($9)
     RETURNING endpoint_id, now() - failing_since > make_interval(secs => $10)";

impl Dispatcher {
    /// Records `done` in one statement, then disables the endpoints that asked for it (410) or
    /// have failed for longer than `disable_after` (rare; each its own statement).
    pub(super) async fn record(&self, done: &[Finished]) -> anyhow::Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let b = Batch::plan(done, &self.cfg);
        let client = self.pool.get().await?;
        let expired = unflushed(
            &client,
            RECORD,
            &[
                &b.ids,
                &b.states,
                &b.attempts,
                &b.waits,
                &b.statuses,
                &b.errors,
                &b.latencies,
                &b.succeeded,
                &b.failed,
                &self.cfg.disable_after.as_secs_f64(),
                &b.skipped,
            ],
        )
        .await
        .context("recording attempts")?;
        for (endpoint, reason) in &b.gone {
            disable(&client, endpoint, reason).await?;
        }
        for row in expired {
            if row.get::<_, bool>(1) {
                let reason = format!(
                    "every attempt failed for more than {}",
                    humantime::format_duration(self.cfg.disable_after)
                );
                disable(&client, row.get(0), &reason).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(id: &str, endpoint: &str, attempts: i32) -> Claimed {
        Claimed {
            delivery_id: id.into(),
            message_id: id.into(),
            endpoint_id: endpoint.into(),
            payload: serde_json::json!({}),
            attempts,
            url: "http://example.com/hook".into(),
            schedule: Some(vec![0, 5]),
            secret_enc: vec![],
            previous_secret_enc: None,
            endpoint_live: true,
        }
    }

    fn attempted(id: &str, endpoint: &str, attempts: i32, outcome: Outcome) -> Finished {
        Finished::Attempted {
            delivery: claimed(id, endpoint, attempts),
            outcome,
            latency: Duration::from_millis(3),
        }
    }

    #[test]
    fn a_batch_holds_each_attempt_and_each_endpoints_verdict() {
        let cfg = WebhooksConfig {
            jitter: 0.0,
            ..WebhooksConfig::default()
        };
        let refused = Outcome::Refused {
            status: 500,
            retry_after: None,
        };
        let done = [
            // `a` fails once and succeeds once in the same batch: it is working.
            attempted("d1", "a", 0, Outcome::Delivered(200)),
            attempted("d2", "a", 0, refused.clone()),
            // `b` fails its first attempt (retried in 5 s) and its last (given up).
            attempted("d3", "b", 0, Outcome::Failed("refused".into())),
            attempted("d4", "b", 1, refused),
            attempted(
                "d5",
                "c",
                0,
                Outcome::Refused {
                    status: 410,
                    retry_after: None,
                },
            ),
            Finished::Skipped(claimed("d6", "d", 0)),
        ];
        let b = Batch::plan(&done, &cfg);
        assert_eq!(b.ids, ["d1", "d2", "d3", "d4", "d5"]);
        assert_eq!(b.attempts, [1, 1, 1, 2, 1]);
        assert_eq!(
            b.states,
            ["delivered", "pending", "pending", "failed", "failed"]
        );
        assert_eq!(b.waits, [None, Some(5.0), Some(5.0), None, None]);
        assert_eq!(
            b.statuses,
            [Some(200), Some(500), None, Some(500), Some(410)]
        );
        assert_eq!(b.errors[2].as_deref(), Some("refused"));
        assert_eq!(b.latencies, [3; 5]);
        assert_eq!(b.succeeded, ["a"]);
        assert_eq!(b.failed, ["b"]);
        assert_eq!(b.gone.len(), 1);
        assert_eq!(b.gone[0].0, "c");
        assert_eq!(b.skipped, ["d6"]);
    }
}
