//! Health transitions on their way to Kafka: queued in the order they happened and each retried
//! with backoff until published, so a broker outage never loses a service's `down` (or its
//! recovery), and no reader sees a recovery before the outage it ends.

use std::future::Future;

use muster_schemas::ServiceHealth;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::collector::{CollectError, Collector, random_unit};
use crate::retry::RetryPolicy;

/// Where transitions go; Kafka in production, a fake in tests.
pub trait HealthSink: Send + Sync + 'static {
    fn send(&self, record: &ServiceHealth)
    -> impl Future<Output = Result<(), CollectError>> + Send;
}

impl HealthSink for Collector {
    fn send(
        &self,
        record: &ServiceHealth,
    ) -> impl Future<Output = Result<(), CollectError>> + Send {
        self.publish(record)
    }
}

/// The sending end; cheap to clone, one per process shared by every service task.
#[derive(Clone)]
pub struct HealthQueue {
    tx: mpsc::UnboundedSender<ServiceHealth>,
}

impl HealthQueue {
    /// Starts the publisher; it runs until `stop`. `backoff` spaces the retries of one record
    /// (its attempt limit is ignored: a transition is retried until published).
    pub fn spawn(sink: impl HealthSink, backoff: RetryPolicy, stop: CancellationToken) -> Self {
        let backoff = RetryPolicy {
            max_attempts: u32::MAX,
            ..backoff
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_in_order(sink, rx, backoff, stop));
        Self { tx }
    }

    /// Queues a transition. Transitions are rare (a few per service and outage), so the queue
    /// needs no bound.
    pub fn push(&self, record: ServiceHealth) {
        if self.tx.send(record).is_err() {
            tracing::warn!("the health publisher has stopped; a transition is not published");
        }
    }
}

async fn publish_in_order(
    sink: impl HealthSink,
    mut rx: mpsc::UnboundedReceiver<ServiceHealth>,
    backoff: RetryPolicy,
    stop: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let mut failures: u32 = 0;
        while let Err(e) = sink.send(&record).await {
            failures = failures.saturating_add(1);
            metrics::counter!("muster_ingest_health_publish_retries_total").increment(1);
            tracing::warn!(event_id = %record.event_id, failures, error = %e, "publishing a health transition failed; retrying");
            let delay = backoff
                .delay(failures.min(u32::MAX - 1), random_unit())
                .unwrap_or_default();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use muster_schemas::Health;

    use super::*;

    /// Fails its first `failures` sends, then records what it is sent.
    #[derive(Clone, Default)]
    struct FlakySink {
        failures: Arc<AtomicU32>,
        attempts: Arc<AtomicU32>,
        sent: Arc<Mutex<Vec<Health>>>,
    }

    impl HealthSink for FlakySink {
        fn send(
            &self,
            record: &ServiceHealth,
        ) -> impl Future<Output = Result<(), CollectError>> + Send {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let fail = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !fail {
                self.sent.lock().unwrap().push(record.current);
            }
            async move {
                if fail {
                    Err(CollectError::Kafka(rdkafka::error::KafkaError::Canceled))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn transition(current: Health) -> ServiceHealth {
        ServiceHealth {
            event_id: "e".into(),
            service_name: "s".into(),
            previous: None,
            current,
            reason: "r".into(),
            latency_ms: None,
            consecutive_failures: 0,
            at: 0,
        }
    }

    #[tokio::test]
    async fn failed_publishes_are_retried_until_sent_in_order() {
        let sink = FlakySink::default();
        sink.failures.store(4, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let backoff = RetryPolicy {
            max_attempts: 1,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        };
        let queue = HealthQueue::spawn(sink.clone(), backoff, stop.clone());
        for h in [Health::Degraded, Health::Down, Health::Healthy] {
            queue.push(transition(h));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sink.sent.lock().unwrap().len() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "not all published");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            *sink.sent.lock().unwrap(),
            [Health::Degraded, Health::Down, Health::Healthy]
        );
        assert_eq!(sink.attempts.load(Ordering::SeqCst), 4 + 3);
        stop.cancel();
    }
}
