//! Dispatchers: claim due deliveries, sign them, POST them, record the attempt, and schedule
//! the next one. Any number of dispatchers share the queue: a claim takes rows with
//! `FOR UPDATE SKIP LOCKED` and leases them, so a dispatcher that dies mid-flight only delays
//! its deliveries until the lease runs out (they are then attempted again: at least once).
//!
//! A dispatcher is a pipeline ([`pipeline`]): it claims as request slots free up, and records
//! whatever finished since its last write in one statement ([`record`]), so a slow receiver
//! holds only its own slot.
//!
//! Order: a delivery waits until every earlier delivery (by sequence) of the same event to the
//! same endpoint is no longer pending (delivered, or failed for good), so a receiver gets an
//! event's messages in sequence order; a receiver failing for one event holds back only that
//! event's later messages. A gap in the sequence numbers shows a message that failed for good.

mod pipeline;
mod record;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use muster_runtime::pg::unflushed;
use muster_runtime::secrets::Secrets;

use crate::config::WebhooksConfig;
use crate::target::Policy;

/// A claimed delivery with what sending it needs.
#[derive(Debug)]
struct Claimed {
    delivery_id: String,
    message_id: String,
    endpoint_id: String,
    payload: serde_json::Value,
    attempts: i32,
    url: String,
    schedule: Option<Vec<i32>>,
    secret_enc: Vec<u8>,
    previous_secret_enc: Option<Vec<u8>>,
    endpoint_live: bool,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered(u16),
    /// The receiver answered, not with a 2xx.
    Refused {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, timeout, refused target.
    Failed(String),
}

/// What to do after an attempt: the pure decision, tested on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Done,
    /// Retry after this long.
    Retry(Duration),
    /// No attempts left.
    GiveUp,
    /// 410 Gone: the receiver asked never to be called again.
    DisableEndpoint(String),
}

/// `attempts` counts this one. Retry delays come from the schedule, moved by up to ±`jitter`,
/// or from `Retry-After` on a 429 or 503 when it asks for longer.
pub fn next_step(outcome: &Outcome, attempts: usize, schedule: &[u32], jitter: f64) -> Next {
    match outcome {
        Outcome::Delivered(_) => Next::Done,
        Outcome::Refused { status: 410, .. } => {
            Next::DisableEndpoint("the endpoint answered 410 Gone".into())
        }
        _ if attempts >= schedule.len() => Next::GiveUp,
        other => {
            let base = schedule[attempts] as f64;
            let factor = 1.0 + jitter * (2.0 * rand::random::<f64>() - 1.0);
            let mut wait = Duration::from_secs_f64((base * factor).max(0.0));
            if let Outcome::Refused {
                status: 429 | 503,
                retry_after: Some(after),
            } = other
            {
                wait = wait.max(*after);
            }
            Next::Retry(wait)
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let at = DateTime::parse_from_rfc2822(v.trim()).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

pub struct Dispatcher {
    pub cfg: WebhooksConfig,
    pub pool: deadpool_postgres::Pool,
    pub secrets: Secrets,
    pub http: reqwest::Client,
}

/// The client deliveries go out on. It connects only where `policy` allows, follows no
/// redirect, and ignores proxy variables (`HTTPS_PROXY`, ...): a proxy would connect in the
/// guard's place, to wherever the name resolves from the proxy.
fn http_client(timeout: Duration, policy: Policy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(policy))
        .user_agent(concat!("muster-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Dispatcher {
    pub fn new(
        cfg: WebhooksConfig,
        pool: deadpool_postgres::Pool,
        secrets: Secrets,
    ) -> anyhow::Result<Self> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let policy = Policy::new(cfg.networks().map_err(anyhow::Error::msg)?);
        let http = http_client(cfg.request_timeout, policy)?;
        Ok(Self {
            cfg,
            pool,
            secrets,
            http,
        })
    }

    /// How long a claim holds a delivery: one request's time, with room.
    fn lease(&self) -> Duration {
        self.cfg.request_timeout * 2 + Duration::from_secs(5)
    }

    /// Claims up to `n` due deliveries: leases them for [`Self::lease`].
    async fn claim(&self, n: usize) -> anyhow::Result<Vec<Claimed>> {
        let client = self.pool.get().await?;
        let rows = unflushed(
            &client,
            "WITH due AS (
                    SELECT d.delivery_id FROM webhook_deliveries d
                    WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                      AND (d.leased_until IS NULL OR d.leased_until < now())
                      AND (d.attempts > 0 OR NOT EXISTS (
                            SELECT 1 FROM webhook_deliveries e
                            WHERE e.endpoint_id = d.endpoint_id AND e.event_id = d.event_id
                              AND e.state = 'pending'
                              AND (e.seq, e.created_at) < (d.seq, d.created_at)))
                    ORDER BY d.next_attempt_at, d.seq
                    LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
                 UPDATE webhook_deliveries w
                 SET leased_until = now() + make_interval(secs => $2)
                 FROM due, webhook_endpoints ep
                 WHERE w.delivery_id = due.delivery_id AND ep.endpoint_id = w.endpoint_id
                 RETURNING w.delivery_id, w.message_id, w.endpoint_id, w.payload, w.attempts,
                           ep.url, ep.retry_schedule_secs, ep.secret_enc,
                           CASE WHEN ep.previous_until > now() THEN ep.previous_secret_enc END,
                           ep.disabled_at IS NULL AND ep.deleted_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM partners p
                                           WHERE p.partner_id = ep.partner_id
                                             AND p.revoked_at IS NOT NULL)",
            &[&(n as i64), &self.lease().as_secs_f64()],
        )
        .await
        .context("claiming due deliveries")?;
        Ok(rows
            .iter()
            .map(|r| Claimed {
                delivery_id: r.get(0),
                message_id: r.get(1),
                endpoint_id: r.get(2),
                payload: r.get(3),
                attempts: r.get(4),
                url: r.get(5),
                schedule: r.get(6),
                secret_enc: r.get(7),
                previous_secret_enc: r.get(8),
                endpoint_live: r.get(9),
            })
            .collect())
    }

    fn open(&self, sealed: &[u8]) -> anyhow::Result<String> {
        let bytes = self.secrets.decrypt(sealed)?;
        Ok(String::from_utf8(bytes)?)
    }

    /// Signs and POSTs one delivery: the body is the stored payload, signed with the current
    /// secret and, during a rotation, the previous one too.
    async fn send(&self, d: &Claimed) -> (Outcome, Duration) {
        let started = Instant::now();
        let body = serde_json::to_vec(&d.payload).expect("JSON serializes");
        let ts = Utc::now().timestamp();
        let mut signatures = Vec::new();
        let secrets = std::iter::once(Some(&d.secret_enc)).chain([d.previous_secret_enc.as_ref()]);
        for sealed in secrets.flatten() {
            match self.open(sealed).and_then(|s| {
                Ok(muster_runtime::signature::sign(
                    &s,
                    &d.message_id,
                    ts,
                    &body,
                )?)
            }) {
                Ok(sig) => signatures.push(sig),
                Err(e) => {
                    return (
                        Outcome::Failed(format!("cannot sign: {e:#}")),
                        started.elapsed(),
                    );
                }
            }
        }
        let res = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body)
            .send()
            .await;
        let outcome = match res {
            Ok(r) if r.status().is_success() => Outcome::Delivered(r.status().as_u16()),
            Ok(r) => Outcome::Refused {
                status: r.status().as_u16(),
                retry_after: r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, Utc::now())),
            },
            Err(e) => Outcome::Failed(error_chain(&e)),
        };
        (outcome, started.elapsed())
    }
}

async fn disable(
    client: &deadpool_postgres::Client,
    endpoint_id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let n = client
        .execute(
            "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2
             WHERE endpoint_id = $1 AND disabled_at IS NULL",
            &[&endpoint_id, &reason],
        )
        .await?;
    if n > 0 {
        tracing::warn!(endpoint = endpoint_id, reason, "webhook endpoint disabled");
    }
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: [u32; 3] = [0, 5, 300];

    /// A one-route HTTP server answering every request with `status`.
    async fn answering(status: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0; 4096];
                let _ = conn.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn proxy_variables_are_ignored() {
        let proxy = answering("200 OK").await;
        let receiver = answering("204 No Content").await;
        // SAFETY: no other test of this crate reads the environment.
        unsafe {
            for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
                std::env::set_var(var, format!("http://{proxy}"));
            }
        }
        let client = http_client(
            Duration::from_secs(5),
            Policy::new(vec!["127.0.0.1/32".parse().unwrap()]),
        );
        unsafe {
            for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
                std::env::remove_var(var);
            }
        }
        let status = client
            .unwrap()
            .get(format!("http://{receiver}/hook"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 204, "the request went through the proxy");
    }

    #[test]
    fn retries_follow_the_schedule_then_give_up() {
        let fail = Outcome::Failed("refused".into());
        assert_eq!(
            next_step(&fail, 1, &SCHEDULE, 0.0),
            Next::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            next_step(&fail, 2, &SCHEDULE, 0.0),
            Next::Retry(Duration::from_secs(300))
        );
        assert_eq!(next_step(&fail, 3, &SCHEDULE, 0.0), Next::GiveUp);
        assert_eq!(
            next_step(&Outcome::Delivered(200), 3, &SCHEDULE, 0.0),
            Next::Done
        );
    }

    #[test]
    fn jitter_stays_within_its_share() {
        let fail = Outcome::Failed("x".into());
        for _ in 0..100 {
            let Next::Retry(d) = next_step(&fail, 2, &SCHEDULE, 0.2) else {
                panic!()
            };
            assert!(
                d >= Duration::from_secs(240) && d <= Duration::from_secs(360),
                "{d:?}"
            );
        }
    }

    #[test]
    fn gone_disables_and_retry_after_is_honoured() {
        // The step after a first attempt refused with `status` and a `Retry-After` in seconds.
        let after = |status, retry_after: Option<u64>| {
            let refused = Outcome::Refused {
                status,
                retry_after: retry_after.map(Duration::from_secs),
            };
            next_step(&refused, 1, &SCHEDULE, 0.0)
        };
        assert!(matches!(after(410, None), Next::DisableEndpoint(_)));
        assert_eq!(after(503, Some(60)), Next::Retry(Duration::from_secs(60)));
        // A 500 does not get to set the pace.
        assert_eq!(after(500, Some(60)), Next::Retry(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
