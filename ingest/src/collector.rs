//! Talks to event-management services: fetches snapshots (with the service's auth and retry
//! policy), publishes them unchanged, checks health, and publishes health transitions.

use std::time::{Duration, Instant};

use muster_schemas::records::now_millis;
use muster_schemas::{Codec, RawSnapshot, ServiceHealth, SnapshotSource, TopicRecord};
use rand::Rng;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenCache;
use crate::service::EventServiceConfig;
use crate::service_health::{Observation, Transition, redact_urls};

/// A health check must answer within this (DESIGN.md §2).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The request header naming which attempt of a collection a realtime request is (1, 2, ...).
pub const ATTEMPT_HEADER: &str = "x-muster-attempt";

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("requesting {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered a redirect (HTTP {status}); redirects are not followed")]
    Redirect { url: String, status: u16 },
    #[error("{url} answered a body larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error(transparent)]
    Token(#[from] crate::auth::TokenError),
    #[error(transparent)]
    Codec(#[from] muster_schemas::CodecError),
    #[error("publishing to Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl CollectError {
    /// Server errors, throttling and transport failures may pass; a 4xx will not.
    fn retryable(&self) -> bool {
        match self {
            Self::Request { .. } | Self::Kafka(_) | Self::Token(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Redirect { .. } | Self::TooLarge { .. } => false,
            Self::Codec(e) => e.is_transient(),
        }
    }
}

/// Shared by every service task of a process. Cheap to clone.
#[derive(Clone)]
pub struct Collector {
    pub http: reqwest::Client,
    pub tokens: TokenCache,
    pub producer: FutureProducer,
    pub codec: Codec,
    /// Publish every record here instead of its own topic; benchmarks use it to keep the event
    /// log clean.
    pub topic_override: Option<String>,
    /// Largest upstream body read; a larger one fails the collection or health check.
    pub max_body_bytes: usize,
}

/// The HTTP client for upstream services. It follows no redirect, so credentials (headers
/// muster adds for one host) never reach another; a redirect is a failed collection.
pub fn http_client(request_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("muster/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn request_error(url: &str, e: reqwest::Error) -> CollectError {
    let reason = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection refused or unreachable".to_owned()
    } else {
        e.without_url().to_string()
    };
    CollectError::Request {
        url: redact_urls(url),
        reason,
    }
}

/// Reads a body chunk by chunk and stops past `limit`, so an endless or huge answer never
/// sits in memory whole.
async fn read_limited(
    url: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CollectError> {
    let too_large = || CollectError::TooLarge {
        url: redact_urls(url),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| request_error(url, e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Collector {
    /// GET with the service's credentials; an OAuth token the service refuses is renewed once.
    /// A collection's request says which attempt of that collection it is (`x-muster-attempt`),
    /// so the service (and our tests) can tell a retry from a second collection.
    async fn get(
        &self,
        svc: &EventServiceConfig,
        url: &str,
        timeout: Option<Duration>,
        collection_attempt: Option<u32>,
    ) -> Result<reqwest::Response, CollectError> {
        for attempt in 0..2 {
            let mut req = self.http.get(url);
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            if let Some(n) = collection_attempt {
                req = req.header(ATTEMPT_HEADER, n);
            }
            let req = self
                .tokens
                .authorize(&self.http, &svc.authentication, req)
                .await?;
            let response = req.send().await.map_err(|e| request_error(url, e))?;
            if response.status().is_redirection() {
                return Err(CollectError::Redirect {
                    url: redact_urls(url),
                    status: response.status().as_u16(),
                });
            }
            if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.tokens.invalidate(&svc.authentication);
                if matches!(
                    svc.authentication,
                    crate::auth::Authentication::Oauth2 { .. }
                ) {
                    continue;
                }
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Fetches one snapshot and publishes it unchanged; returns the fetch latency.
    pub async fn collect_once(
        &self,
        svc: &EventServiceConfig,
        source: SnapshotSource,
    ) -> Result<Duration, CollectError> {
        self.attempt(svc, source, 1).await
    }

    /// Attempt `attempt` (from 1) of one collection.
    async fn attempt(
        &self,
        svc: &EventServiceConfig,
        source: SnapshotSource,
        attempt: u32,
    ) -> Result<Duration, CollectError> {
        let url = svc.realtime_url();
        let started = Instant::now();
        let response = self.get(svc, &url, None, Some(attempt)).await?;
        let status = response.status();
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
        {
            return Err(CollectError::Status {
                url: redact_urls(&url),
                status: status.as_u16(),
            });
        }
        let body = read_limited(&url, response, self.max_body_bytes).await?;
        let latency = started.elapsed();
        let snapshot = RawSnapshot {
            event_id: svc.event_id.clone(),
            service_name: svc.service_name.clone(),
            source,
            data_schema: svc.sync_settings.data_schema.clone(),
            fetched_at: now_millis(),
            http_status: status.as_u16() as i32,
            body: String::from_utf8_lossy(&body).into_owned(),
            capacity: svc.event.capacity,
        };
        self.publish(&snapshot).await?;
        metrics::counter!("muster_ingest_snapshots_total", "source" => source.as_str())
            .increment(1);
        Ok(latency)
    }

    /// `collect_once` with the service's retry policy (exponential backoff, full jitter).
    pub async fn collect(
        &self,
        svc: &EventServiceConfig,
        source: SnapshotSource,
        stop: &CancellationToken,
    ) -> Result<Duration, CollectError> {
        let policy = &svc.sync_settings.retry_policy;
        let mut attempt = 1;
        loop {
            match self.attempt(svc, source, attempt).await {
                Ok(latency) => return Ok(latency),
                Err(e) if e.retryable() => match policy.delay(attempt, random_unit()) {
                    Some(delay) => {
                        metrics::counter!("muster_ingest_retries_total").increment(1);
                        tracing::debug!(event_id = %svc.event_id, attempt, ?delay, error = %e, "retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return Err(e),
                            _ = tokio::time::sleep(delay) => {}
                        }
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// The service's health check: 2xx with JSON `{"status":"healthy"}` within 10 s.
    pub async fn check_health(&self, svc: &EventServiceConfig) -> Observation {
        let url = svc.health_url();
        let started = Instant::now();
        let failed =
            |reason: String, latency: Option<Duration>| Observation::Failed { reason, latency };
        let response = match self.get(svc, &url, Some(HEALTH_TIMEOUT), None).await {
            Ok(r) => r,
            Err(e) => return failed(e.to_string(), None),
        };
        let latency = started.elapsed();
        let status = response.status();
        if !status.is_success() {
            return failed(
                format!("health check answered HTTP {}", status.as_u16()),
                Some(latency),
            );
        }
        let body = match read_limited(&url, response, self.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return failed(e.to_string(), Some(latency)),
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v["status"] == "healthy" => Observation::Ok { latency },
            Ok(v) => failed(
                format!("health check reports status {}", v["status"]),
                Some(latency),
            ),
            Err(_) => failed(
                "health check answered a body that is not JSON".into(),
                Some(latency),
            ),
        }
    }

    /// The record of a transition, stamped when it happened (it may be published later).
    pub fn health_record(svc: &EventServiceConfig, t: &Transition) -> ServiceHealth {
        ServiceHealth {
            event_id: svc.event_id.clone(),
            service_name: svc.service_name.clone(),
            previous: t.previous,
            current: t.current,
            reason: t.reason.clone(),
            latency_ms: t.latency.map(|l| l.as_millis() as i64),
            consecutive_failures: t.consecutive_failures as i32,
            at: now_millis(),
        }
    }

    pub async fn publish<R: TopicRecord>(&self, record: &R) -> Result<(), CollectError> {
        let payload = self.codec.encode(record).await?;
        let topic = match &self.topic_override {
            Some(t) => t.clone(),
            None => self.codec.topics().of::<R>(),
        };
        let mut out = FutureRecord::to(&topic).payload(&payload);
        if let Some(k) = record.key() {
            out = out.key(k);
        }
        self.producer
            .send(out, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| CollectError::Kafka(e))?;
        Ok(())
    }
}

pub fn random_unit() -> f64 {
    rand::rng().random()
}
