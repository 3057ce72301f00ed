//! The feed's listener: one per process, on a connection of its own (a pooled one would be
//! handed to requests between notifications, and `LISTEN` belongs to a session). Woken by a
//! notification, or by a slow tick in case one was missed, it reads the log from the last id
//! it broadcast; after a lost connection it reconnects with backoff and carries on from that
//! id, so what was committed meanwhile is read from the log, not lost with the notifications.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use muster_runtime::Shutdown;
use muster_runtime::projection::changes::CHANNEL;
use muster_runtime::restart::Backoff;
use tokio::sync::{Notify, broadcast};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Change, Feed, PAGE};
use crate::problem::Problem;

/// Runs until `shutdown`, then drops `sender`, which ends every subscriber.
pub(super) async fn run(
    feed: Feed,
    sender: broadcast::Sender<Arc<Change>>,
    db: tokio_postgres::Config,
    shutdown: Shutdown,
) {
    let backoff = Backoff::doubling();
    let mut failures = 0u32;
    // The last id broadcast; `None` until the first session reads where the log is.
    let mut last = None;
    while !shutdown.is_cancelled() {
        let started = Instant::now();
        let Err(e) = session(&feed, &sender, &db, &shutdown, &mut last).await else {
            break;
        };
        if started.elapsed() > backoff.reset_after {
            failures = 0;
        }
        let delay = backoff.delay(failures);
        failures = failures.saturating_add(1);
        tracing::warn!(error = %format!("{e:#}"), retry_in = ?delay, "change feed: listener failed; reconnecting");
        metrics::counter!("muster_feed_reconnects_total").increment(1);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection's life: `Ok` at shutdown, `Err` when the connection or a read failed.
async fn session(
    feed: &Feed,
    sender: &broadcast::Sender<Arc<Change>>,
    db: &tokio_postgres::Config,
    shutdown: &Shutdown,
    last: &mut Option<i64>,
) -> anyhow::Result<()> {
    let (client, mut connection) = db
        .connect(NoTls)
        .await
        .context("connecting the change feed's listener to PostgreSQL")?;
    // The connection's messages are read here; a notification only wakes the reader (a
    // permit is kept while it is busy, so none is missed between two reads).
    let wake = Arc::new(Notify::new());
    let woken = wake.clone();
    let mut driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(_) = message? {
                woken.notify_one();
            }
        }
        Ok::<_, tokio_postgres::Error>(())
    });
    let listening = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .context("LISTEN")?;
        let stmt = client
            .prepare(PAGE)
            .await
            .context("preparing the log read")?;
        let mut after = match *last {
            Some(id) => id,
            None => feed.head().await.map_err(problem)?,
        };
        *last = Some(after);
        tracing::info!(after, "change feed listening");
        loop {
            // Up to the end of the log, a page at a time.
            loop {
                let page = feed.page(&client, &stmt, after).await.map_err(problem)?;
                let more = page.more;
                if !page.rows.is_empty() {
                    let db = feed
                        .inner
                        .pool
                        .get()
                        .await
                        .context("re-reading changed events")?;
                    for change in feed.resolve(&db, page).await.map_err(problem)? {
                        after = change.id;
                        broadcast(sender, change);
                    }
                    *last = Some(after);
                }
                if !more {
                    break;
                }
            }
            metrics::gauge!("muster_feed_subscribers").set(sender.receiver_count() as f64);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok::<_, anyhow::Error>(()),
                _ = wake.notified() => {}
                _ = tokio::time::sleep(feed.inner.cfg.poll_every) => {}
            }
        }
    };
    let outcome = tokio::select! {
        r = listening => r,
        ended = &mut driver => Err(match ended {
            Ok(Ok(())) => anyhow::anyhow!("PostgreSQL closed the listener's connection"),
            Ok(Err(e)) => anyhow::Error::new(e).context("the listener's connection failed"),
            Err(e) => anyhow::Error::new(e).context("the listener's connection task ended"),
        }),
    };
    driver.abort();
    outcome
}

fn broadcast(sender: &broadcast::Sender<Arc<Change>>, change: Arc<Change>) {
    let lag = (chrono::Utc::now() - change.at).num_milliseconds().max(0) as f64 / 1e3;
    metrics::histogram!("muster_feed_lag_seconds").record(lag);
    metrics::counter!("muster_feed_changes_total", "kind" => change.kind.as_str()).increment(1);
    // No subscriber is not an error: the change stays in the log.
    let _ = sender.send(change);
}

fn problem(p: Problem) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: {}",
        p.title,
        p.detail.as_deref().unwrap_or("see the log above")
    )
}
