//! The restart-after-failure loop every long-running worker shares: a session runs until it
//! fails, the worker's readiness part says why, and the session starts again after a backoff,
//! until shutdown. Only transient errors get here (bad records are dead-lettered), so a restart
//! is how a worker rides out PostgreSQL or Kafka being down.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::readiness::PartState;
use crate::{Health, Shutdown};

/// How long to wait before the next session: `first`, doubling up to `max`; from `first` again
/// after a session that ran longer than `reset_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Backoff {
    /// The same delay every time.
    pub const fn constant(delay: Duration) -> Self {
        Self {
            first: delay,
            max: delay,
            reset_after: Duration::ZERO,
        }
    }

    /// 0.5 s, 1 s, 2 s, then every 4 s while a dependency stays down; from 0.5 s again after
    /// a session that ran a minute. The cap is how late a worker may notice that PostgreSQL or
    /// Kafka is back: a 10 s cap kept projections idle for up to 10 s after a restart.
    pub const fn doubling() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(4),
            reset_after: Duration::from_secs(60),
        }
    }

    /// The delay after the `failures`-th failure in a row (0 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        self.first
            .saturating_mul(1 << failures.min(16))
            .min(self.max)
    }
}

/// A supervised worker: its readiness part, how it backs off, and the restart counter it
/// increments (a metric name and the label that names the worker), if any.
pub struct Supervisor<'a> {
    pub part: &'a str,
    pub backoff: Backoff,
    pub counter: Option<(&'static str, &'static str, String)>,
}

impl Supervisor<'_> {
    /// Runs `session` again and again until shutdown. A session that returns `Ok` before
    /// shutdown is started again at once (it ended on purpose, e.g. to reassign partitions).
    pub async fn run<F, Fut>(&self, health: &Health, shutdown: &Shutdown, mut session: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        health.set(self.part, PartState::Starting);
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let Err(e) = session().await else { continue };
            if started.elapsed() > self.backoff.reset_after && !self.backoff.reset_after.is_zero() {
                failures = 0;
            }
            let delay = self.backoff.delay(failures);
            failures = failures.saturating_add(1);
            tracing::error!(part = self.part, error = %format!("{e:#}"), retry_in = ?delay, "failed; restarting");
            health.failing(self.part, format!("{e:#}"));
            if let Some((name, label, value)) = &self.counter {
                metrics::counter!(*name, *label => value.clone()).increment(1);
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_backoff_caps_and_constant_stays() {
        let b = Backoff::doubling();
        let ms: Vec<u128> = (0..6).map(|f| b.delay(f).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 4000, 4000]);
        let c = Backoff::constant(Duration::from_secs(2));
        assert_eq!(c.delay(0), c.delay(40));
    }

    #[tokio::test]
    async fn failed_sessions_restart_and_report_until_shutdown() {
        let (health, stop) = (Health::default(), Shutdown::new());
        let mut sessions = 0;
        Supervisor {
            part: "w",
            backoff: Backoff::constant(Duration::from_millis(1)),
            counter: None,
        }
        .run(&health, &stop, || {
            sessions += 1;
            let n = sessions;
            let stop = stop.clone();
            async move {
                if n == 3 {
                    stop.cancel();
                    return Ok(());
                }
                anyhow::bail!("down {n}")
            }
        })
        .await;
        assert_eq!(sessions, 3);
        assert_eq!(
            health.snapshot()["w"],
            PartState::Failing {
                reason: "down 2".into()
            }
        );
    }
}
