//! The dispatcher's loop: up to `webhooks.concurrency` requests in flight, a claim whenever a
//! slot is free, and a record of whatever finished since the last one, all three at once.
//! Rounds (claim a batch, wait for its slowest request, record) left every slot idle behind
//! the slowest receiver and two commits per batch.
//!
//! Order and at-least-once are the queue's, not the loop's: a claimed delivery stays `pending`
//! and leased until its attempt is recorded, so a later one of its event is not claimed before
//! that record commits, and a delivery whose record never commits (a kill, a failed write) is
//! attempted again when its lease ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::BoxFuture;
use muster_runtime::{Health, Shutdown};
use tokio::task::JoinSet;

use super::record::Finished;
use super::{Claimed, Dispatcher};

/// How long claims pause after one failed.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Why claims wait.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    None,
    /// The last claim found fewer due deliveries than slots: until the poll interval ends or a
    /// record commits (a recorded delivery may release the next one of its event).
    Dry(Instant),
    /// The last claim failed: until the pause ends, whatever is recorded.
    Error(Instant),
}

/// When the loop claims, and how many: the decisions of the loop, apart from its I/O.
#[derive(Debug)]
struct Pacing {
    concurrency: usize,
    poll: Duration,
    hold: Hold,
}

impl Pacing {
    fn new(concurrency: usize, poll: Duration) -> Self {
        Self {
            concurrency,
            poll,
            hold: Hold::None,
        }
    }

    /// How many deliveries to claim now with `busy` requests in flight: the free slots, unless
    /// claims wait.
    fn want(&self, busy: usize, now: Instant) -> Option<usize> {
        let free = self.concurrency.saturating_sub(busy);
        let held = self.wake_at().is_some_and(|t| now < t);
        (free > 0 && !held).then_some(free)
    }

    /// When waiting claims may go again, though nothing else happens.
    fn wake_at(&self) -> Option<Instant> {
        match self.hold {
            Hold::None => None,
            Hold::Dry(t) | Hold::Error(t) => Some(t),
        }
    }

    fn claimed(&mut self, asked: usize, got: usize, now: Instant) {
        self.hold = if got < asked {
            Hold::Dry(now + self.poll)
        } else {
            Hold::None
        };
    }

    fn recorded(&mut self) {
        if let Hold::Dry(_) = self.hold {
            self.hold = Hold::None;
        }
    }

    fn failed(&mut self, now: Instant) {
        self.hold = Hold::Error(now + ERROR_PAUSE);
    }
}

impl Dispatcher {
    /// Dispatches until shutdown; requests in flight then finish and are recorded.
    pub async fn run(self, health: Health, shutdown: Shutdown) -> anyhow::Result<()> {
        health.ready("webhooks.dispatch");
        tracing::info!(
            concurrency = self.cfg.concurrency,
            "webhook dispatcher running"
        );
        Arc::new(self).pipeline(&shutdown, None).await.map(drop)
    }

    /// Dispatches until `attempts` attempts are recorded (`muster bench webhooks` drains a
    /// queue it filled).
    pub async fn drain(self, attempts: usize) -> anyhow::Result<()> {
        Arc::new(self)
            .pipeline(&Shutdown::new(), Some(attempts))
            .await
            .map(drop)
    }

    async fn attempt(&self, delivery: Claimed) -> Finished {
        let (outcome, latency) = self.send(&delivery).await;
        tracing::debug!(delivery = %delivery.delivery_id, endpoint = %delivery.endpoint_id,
                        ?outcome, "webhook attempt");
        Finished::Attempted {
            delivery,
            outcome,
            latency,
        }
    }

    /// The loop. Each request is its own task; one claim and one record run at a time, beside
    /// them. Returns how many attempts (and skips) it recorded.
    async fn pipeline(
        self: Arc<Self>,
        shutdown: &Shutdown,
        limit: Option<usize>,
    ) -> anyhow::Result<usize> {
        type Pending<'a, T> = Option<BoxFuture<'a, (usize, anyhow::Result<T>)>>;
        let me: &Dispatcher = &self;
        let mut pacing = Pacing::new(me.cfg.concurrency, me.cfg.poll_interval);
        let mut flying: JoinSet<Finished> = JoinSet::new();
        let mut finished: Vec<Finished> = Vec::new();
        let mut claiming: Pending<'_, Vec<Claimed>> = None;
        let mut recording: Pending<'_, ()> = None;
        let mut recorded = 0;
        loop {
            let stopping = shutdown.is_cancelled() || limit.is_some_and(|l| recorded >= l);
            let now = Instant::now();
            if claiming.is_none()
                && !stopping
                && let Some(n) = pacing.want(flying.len(), now)
            {
                claiming = Some(Box::pin(async move { (n, me.claim(n).await) }));
            }
            if recording.is_none() && !finished.is_empty() {
                let batch = std::mem::take(&mut finished);
                recording = Some(Box::pin(
                    async move { (batch.len(), me.record(&batch).await) },
                ));
            }
            if stopping && claiming.is_none() && recording.is_none() && flying.is_empty() {
                return Ok(recorded);
            }
            let wake = pacing.wake_at().filter(|t| *t > now && !stopping);
            tokio::select! {
                Some(joined) = flying.join_next() => {
                    finished.push(joined.context("a delivery's task failed")?);
                }
                (asked, claimed) = async { claiming.as_mut().expect("guarded").await },
                    if claiming.is_some() => {
                    claiming = None;
                    match claimed {
                        Ok(claimed) => {
                            pacing.claimed(asked, claimed.len(), Instant::now());
                            for d in claimed {
                                // Queued before their endpoint was disabled (or its partner
                                // revoked): not attempted; replayable once it is enabled.
                                if !d.endpoint_live {
                                    finished.push(Finished::Skipped(d));
                                    continue;
                                }
                                let this = Arc::clone(&self);
                                flying.spawn(async move { this.attempt(d).await });
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "webhook claim failed; retrying");
                            pacing.failed(Instant::now());
                        }
                    }
                }
                (n, written) = async { recording.as_mut().expect("guarded").await },
                    if recording.is_some() => {
                    recording = None;
                    match written {
                        Ok(()) => {
                            recorded += n;
                            pacing.recorded();
                        }
                        // Still leased: attempted again when their leases end (at least once).
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), attempts = n,
                            "recording webhook attempts failed; they will be sent again"),
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or(now).into()), if wake.is_some() => {}
                _ = shutdown.cancelled(), if !stopping => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_millis(250);

    #[test]
    fn claims_fill_the_free_slots_and_never_more() {
        let p = Pacing::new(16, POLL);
        let now = Instant::now();
        assert_eq!(p.want(0, now), Some(16));
        assert_eq!(p.want(11, now), Some(5));
        assert_eq!(p.want(16, now), None);
        assert_eq!(p.want(17, now), None);
    }

    #[test]
    fn a_short_claim_waits_for_a_record_or_the_poll_interval() {
        let mut p = Pacing::new(16, POLL);
        let now = Instant::now();
        p.claimed(16, 16, now);
        assert_eq!(p.want(16, now), None, "every slot is busy");
        assert_eq!(
            p.want(13, now),
            Some(3),
            "a full claim may be followed at once"
        );
        p.claimed(3, 1, now);
        assert_eq!(p.want(2, now), None, "the queue had no more");
        assert_eq!(p.wake_at(), Some(now + POLL));
        assert_eq!(p.want(2, now + POLL), Some(14), "the poll interval ended");
        p.recorded();
        assert_eq!(
            p.want(2, now),
            Some(14),
            "a record may have released deliveries"
        );
        assert_eq!(p.wake_at(), None);
    }

    #[test]
    fn a_failed_claim_pauses_whatever_is_recorded() {
        let mut p = Pacing::new(4, POLL);
        let now = Instant::now();
        p.failed(now);
        p.recorded();
        assert_eq!(p.want(0, now + POLL), None);
        assert_eq!(p.want(0, now + ERROR_PAUSE), Some(4));
        p.claimed(4, 4, now + ERROR_PAUSE);
        assert_eq!(p.wake_at(), None);
    }
}
