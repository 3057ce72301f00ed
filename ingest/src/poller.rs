//! Polls one service: an initial full snapshot, then one every interval (with jitter so that
//! many services do not fire together), each published unchanged to the raw topic.

use std::time::{Duration, Instant};

use muster_schemas::records::now_millis;
use muster_schemas::{Codec, RawSnapshot, SnapshotSource, TopicRecord};
use rand::Rng;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::service::EventServiceConfig;

/// What one poll needs; shared by every service's task.
#[derive(Clone)]
pub struct Publisher {
    pub http: reqwest::Client,
    pub producer: FutureProducer,
    pub codec: Codec,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("requesting {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(transparent)]
    Codec(#[from] muster_schemas::CodecError),
    #[error("publishing to Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl PollError {
    /// Server errors and transport failures may pass; a 4xx will not change by retrying.
    fn retryable(&self) -> bool {
        match self {
            Self::Request { .. } | Self::Kafka(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Codec(_) => false,
        }
    }
}

/// Runs until `stop` is cancelled.
pub async fn run(svc: EventServiceConfig, publisher: Publisher, stop: CancellationToken) {
    let interval = svc.sync_settings.interval();
    let mut source = SnapshotSource::InitialSync;
    // Spread first polls over one interval so a restart does not fire every service at once.
    let mut next = Instant::now() + jitter(interval, source);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
        let started = Instant::now();
        match collect(&svc, &publisher, source, &stop).await {
            Ok(()) => {
                metrics::counter!("muster_ingest_polls_total", "outcome" => "ok").increment(1);
                source = SnapshotSource::Poll;
            }
            Err(e) => {
                metrics::counter!("muster_ingest_polls_total", "outcome" => "error").increment(1);
                tracing::warn!(event_id = %svc.event_id, error = %e, "collection failed");
            }
        }
        metrics::histogram!("muster_ingest_poll_seconds").record(started.elapsed().as_secs_f64());
        next = started + interval + jitter(interval / 10, SnapshotSource::Poll);
    }
}

fn random_unit() -> f64 {
    rand::rng().random()
}

fn jitter(span: Duration, source: SnapshotSource) -> Duration {
    let span = match source {
        SnapshotSource::InitialSync => span.min(Duration::from_secs(1)),
        _ => span,
    };
    span.mul_f64(random_unit())
}

/// One collection with the service's retry policy.
async fn collect(
    svc: &EventServiceConfig,
    publisher: &Publisher,
    source: SnapshotSource,
    stop: &CancellationToken,
) -> Result<(), PollError> {
    let policy = &svc.sync_settings.retry_policy;
    let mut attempt = 1;
    loop {
        match fetch_and_publish(svc, publisher, source).await {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable() => match policy.delay(attempt, random_unit()) {
                Some(delay) => {
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

async fn fetch_and_publish(
    svc: &EventServiceConfig,
    publisher: &Publisher,
    source: SnapshotSource,
) -> Result<(), PollError> {
    let url = svc.realtime_url();
    let response = svc
        .authentication
        .apply(publisher.http.get(&url))
        .send()
        .await
        .map_err(|source| PollError::Request {
            url: url.clone(),
            source,
        })?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(PollError::Status {
            url,
            status: status.as_u16(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|source| PollError::Request {
            url: url.clone(),
            source,
        })?;
    let snapshot = RawSnapshot {
        event_id: svc.event_id.clone(),
        service_name: svc.service_name.clone(),
        source,
        data_schema: svc.sync_settings.data_schema.clone(),
        fetched_at: now_millis(),
        http_status: status.as_u16() as i32,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let payload = publisher.codec.encode(&snapshot).await?;
    publisher
        .producer
        .send(
            FutureRecord::to(RawSnapshot::TOPIC)
                .key(&svc.event_id)
                .payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| PollError::Kafka(e))?;
    Ok(())
}
