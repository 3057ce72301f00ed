//! The feed's listener: one per process, on a connection of its own (a pooled one would be
//! handed to requests between notifications, and `LISTEN` belongs to a session). Woken by a
//! notification, or by a slow tick in case one was missed, it reads the log from the last id
//! it broadcast; after a lost connection it reconnects with backoff and carries on from that
//! id, so what was committed meanwhile is read from the log, not lost with the notifications.
//!
//! It also keeps the process's in-memory view ([`super::memory`]): loaded whole when a session
//! starts (after `LISTEN`, so nothing committed later passes it by), each page of changes taken
//! in before it is broadcast, the keys reloaded when their channel is notified, and all of it
//! when [`RELOAD_CHANNEL`] is. While it has
//! no session the view is marked lost and routes read PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use muster_runtime::Shutdown;
use muster_runtime::projection::changes::CHANNEL;
use muster_runtime::restart::Backoff;
use tokio::sync::{Notify, broadcast};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Change, Feed, PAGE, RELOAD_CHANNEL};
use crate::auth::KEYS_CHANNEL;
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
        let outcome = session(&feed, &sender, &db, &shutdown, &mut last).await;
        feed.inner.memory.lost();
        let Err(e) = outcome else {
            break;
        };
        feed.memory_serves(false, &format!("the change feed is lost ({e:#})"));
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
    // Named, so operators (and the tests) can tell it from the pool's connections.
    let mut db = db.clone();
    db.application_name("muster api change feed");
    let (client, mut connection) = db
        .connect(NoTls)
        .await
        .context("connecting the change feed's listener to PostgreSQL")?;
    // The connection's messages are read here; a notification only wakes the reader (a
    // permit is kept while it is busy, so none is missed between two reads), and one on the
    // keys' channel also says to reload them.
    let wake = Arc::new(Notify::new());
    let keys_changed = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    let (woken, keys_flag, reload_flag) = (wake.clone(), keys_changed.clone(), reload.clone());
    let mut driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message? {
                match n.channel() {
                    KEYS_CHANNEL => keys_flag.store(true, Ordering::Release),
                    RELOAD_CHANNEL => reload_flag.store(true, Ordering::Release),
                    _ => {}
                }
                woken.notify_one();
            }
        }
        Ok::<_, tokio_postgres::Error>(())
    });
    let listening = async {
        client
            .batch_execute(&format!(
                "LISTEN {CHANNEL}; LISTEN {KEYS_CHANNEL}; LISTEN {RELOAD_CHANNEL}"
            ))
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
        // Loaded after `LISTEN` and after the log's head was read: whatever commits from
        // here on is read from the log again and taken in on top.
        feed.load().await.map_err(problem)?;
        feed.memory_serves(true, "");
        tracing::info!(after, "change feed listening");
        loop {
            if reload.swap(false, Ordering::AcqRel) {
                keys_changed.store(false, Ordering::Release);
                feed.load().await.map_err(problem)?;
            }
            if keys_changed.swap(false, Ordering::AcqRel) {
                feed.reload_keys().await.map_err(problem)?;
            }
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
                    let changes = feed.resolve(&db, page).await.map_err(problem)?;
                    // In the view before anyone hears of them: a client told of a change
                    // reads it back.
                    feed.remember(&db, &changes).await.map_err(problem)?;
                    for change in changes {
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
