//! The tasks of one process. Each stage's `spawn` returns its own; the binary adds them up and
//! waits: a worker that returns before shutdown has failed, so the others are stopped and its
//! error is the process's.

use std::future::Future;

use anyhow::Context;
use futures::future::select_all;
use tokio::task::JoinHandle;

use crate::Shutdown;

#[derive(Default)]
pub struct Workers {
    running: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

impl Workers {
    /// Runs `work` as the worker `name` (named in its error).
    pub fn spawn(
        &mut self,
        name: &'static str,
        work: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.running.push((name, tokio::spawn(work)));
    }

    /// Just `work`, as the worker `name`: a stage whose whole job is one task.
    pub fn one(
        name: &'static str,
        work: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> Self {
        let mut workers = Self::default();
        workers.spawn(name, work);
        workers
    }

    pub fn add(&mut self, other: Workers) {
        self.running.extend(other.running);
    }

    /// Waits for every worker; the first to end, with an error or before shutdown, stops the
    /// others, and its error is returned.
    pub async fn wait(self, stop: Shutdown) -> anyhow::Result<()> {
        let (mut names, mut handles): (Vec<_>, Vec<_>) = self.running.into_iter().unzip();
        let mut first_error = None;
        while !handles.is_empty() {
            let (done, i, rest) = select_all(handles).await;
            handles = rest;
            let name = names.remove(i);
            let result = done
                .with_context(|| format!("{name} panicked"))
                .and_then(|r| r.context(name));
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "worker failed; stopping");
                first_error.get_or_insert(e);
            } else if !stop.is_cancelled() {
                tracing::error!(worker = name, "a worker stopped unexpectedly; stopping");
                first_error.get_or_insert(anyhow::anyhow!("{name} stopped unexpectedly"));
            }
            stop.cancel();
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                tracing::info!("stopped cleanly");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_stops_the_others_and_is_the_error() {
        let stop = Shutdown::new();
        let mut workers = Workers::default();
        let s = stop.clone();
        workers.spawn("patient", async move {
            s.cancelled().await;
            Ok(())
        });
        workers.add(Workers::one("broken", async {
            anyhow::bail!("no connection")
        }));
        let err = workers.wait(stop.clone()).await.unwrap_err();
        assert!(stop.is_cancelled());
        assert_eq!(format!("{err:#}"), "broken: no connection");
    }

    #[tokio::test]
    async fn a_worker_that_ends_before_shutdown_has_failed() {
        let err = Workers::one("quitter", async { Ok(()) })
            .wait(Shutdown::new())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "quitter stopped unexpectedly");
    }
}
