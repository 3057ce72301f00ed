//! One task per leased service: collects at the service's interval and runs its health checks,
//! feeding both into its health, and only while this process holds the service's lease.

use std::time::{Duration, Instant};

use muster_schemas::SnapshotSource;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::collector::{Collector, random_unit};
use crate::health_queue::HealthQueue;
use crate::service::EventServiceConfig;
use crate::service_health::{
    HealthPolicy, HealthTracker, Observation, Probe, Transition, clean_reason,
};
use crate::service_table::{self, Lease};

#[derive(Clone)]
pub struct TaskContext {
    pub collector: Collector,
    pub pool: deadpool_postgres::Pool,
    /// Until when this process's leases are known to be held.
    pub lease_valid_until: watch::Receiver<Instant>,
    pub health_check_interval: Duration,
    pub health_policy: HealthPolicy,
    /// Publishes transitions in order, retrying until Kafka takes them.
    pub health_queue: HealthQueue,
}

impl TaskContext {
    fn holds_lease(&self) -> bool {
        *self.lease_valid_until.borrow() > Instant::now()
    }
}

/// The first collection: one interval after the previous one (whoever made it), so a service
/// that changes hands is not collected twice in one interval; spread by jitter otherwise.
fn first_collection(lease: &Lease, interval: Duration) -> Instant {
    let now = Instant::now();
    match lease.last_attempt_at {
        Some(last) => {
            let since = (chrono::Utc::now() - last).to_std().unwrap_or_default();
            now + interval.saturating_sub(since)
        }
        None => now + interval.mul_f64(random_unit()).min(Duration::from_secs(1)),
    }
}

pub async fn run(lease: Lease, ctx: TaskContext, stop: CancellationToken) {
    let svc = lease.service.config.clone();
    let interval = svc.sync_settings.interval();
    let mut tracker = HealthTracker::new(ctx.health_policy.clone());
    let mut next_collection = first_collection(&lease, interval);
    let mut next_check = Instant::now() + ctx.health_check_interval.mul_f64(random_unit());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next_collection.min(next_check).into()) => {}
        }
        let now = Instant::now();
        if now >= next_collection {
            next_collection = now + interval;
            if ctx.holds_lease() {
                let obs = collect(&svc, &ctx, &stop).await;
                observe(&svc, &ctx, &mut tracker, Probe::Collection, &obs).await;
            }
        }
        if now >= next_check {
            next_check = now + ctx.health_check_interval;
            if ctx.holds_lease() {
                let obs = ctx.collector.check_health(&svc).await;
                observe(&svc, &ctx, &mut tracker, Probe::HealthCheck, &obs).await;
            }
        }
    }
}

async fn collect(
    svc: &EventServiceConfig,
    ctx: &TaskContext,
    stop: &CancellationToken,
) -> Observation {
    if let Ok(client) = ctx.pool.get().await
        && let Err(e) = service_table::start_attempt(&client, &svc.event_id).await
    {
        tracing::warn!(event_id = %svc.event_id, error = %e, "recording the collection start failed");
    }
    let started = Instant::now();
    let result = ctx.collector.collect(svc, SnapshotSource::Poll, stop).await;
    metrics::histogram!("muster_ingest_collection_seconds").record(started.elapsed().as_secs_f64());
    let (obs, error) = match &result {
        Ok(latency) => (Observation::Ok { latency: *latency }, None),
        Err(e) => {
            tracing::warn!(event_id = %svc.event_id, error = %e, "collection failed after retries");
            metrics::counter!("muster_ingest_collection_failures_total").increment(1);
            let reason = clean_reason(&e.to_string());
            (
                Observation::Failed {
                    reason: reason.clone(),
                    latency: None,
                },
                Some(reason),
            )
        }
    };
    let latency_ms = result.as_ref().ok().map(|l| l.as_millis() as i64);
    if let Ok(client) = ctx.pool.get().await
        && let Err(e) = service_table::finish_attempt(
            &client,
            &svc.event_id,
            result.is_ok(),
            latency_ms,
            error.as_deref(),
        )
        .await
    {
        tracing::warn!(event_id = %svc.event_id, error = %e, "recording the collection failed");
    }
    obs
}

async fn observe(
    svc: &EventServiceConfig,
    ctx: &TaskContext,
    tracker: &mut HealthTracker,
    probe: Probe,
    obs: &Observation,
) {
    let Some(t) = tracker.observe(probe, obs) else {
        return;
    };
    report(svc, ctx, &t).await;
}

async fn report(svc: &EventServiceConfig, ctx: &TaskContext, t: &Transition) {
    tracing::info!(event_id = %svc.event_id, previous = ?t.previous, current = %t.current, reason = %t.reason, "service health changed");
    metrics::counter!("muster_ingest_health_transitions_total", "to" => t.current.as_str())
        .increment(1);
    ctx.health_queue.push(Collector::health_record(svc, t));
    if let Ok(client) = ctx.pool.get().await
        && let Err(e) = service_table::record_health(
            &**client,
            &svc.event_id,
            t.current.as_str(),
            &t.reason,
            t.consecutive_failures as i32,
        )
        .await
    {
        tracing::warn!(event_id = %svc.event_id, error = %e, "recording the health failed");
    }
}
