//! Watching snapshots arrive, with as little delay of its own as possible:
//!
//! - **The row in PostgreSQL.** A connection of its own `LISTEN`s on the projections' change
//!   channel; each notification (or, at the latest, every 250 ms) it reads the new change-log
//!   rows of the realtime model joined with the rows they name, so a snapshot is seen one
//!   notification and one query after its commit. The change log's own time of the commit is
//!   kept too, so the method's delay is measured, not guessed (see [`Ledger`]).
//! - **The API's answer.** For a sample of events, a new row wakes that event's prober, which
//!   asks `GET /api/partner/events/{id}/attendance` until `realtime.observedAt` shows the
//!   snapshot (or a newer one), 5 ms apart. An API reads what was committed, so it cannot
//!   answer a snapshot before its row exists: starting at the row costs nothing, and keeps the
//!   API's load at one request per sampled snapshot instead of a polling rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::Shutdown;
use muster_runtime::projection::changes::CHANNEL;
use muster_schemas::read_models::ChangeKind;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::ledger::Ledger;

pub type Shared = Arc<Mutex<Ledger>>;

/// The new realtime changes after a change-log id, with the row each names now: the snapshot's
/// time (ms) and when the change was logged (µs).
const NEW_ROWS: &str = "SELECT c.id, c.event_id,
        (extract(epoch FROM r.observed_at) * 1000)::bigint AS observed_ms,
        (extract(epoch FROM c.at) * 1000000)::bigint AS logged_us
    FROM change_log c JOIN event_realtime r USING (event_id)
    WHERE c.id > $1 AND c.kind = $2
    ORDER BY c.id";

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Watches the realtime rows until `stop`, noting each new snapshot in `ledger` and waking the
/// prober of a sampled event.
pub async fn rows(
    db: tokio_postgres::Config,
    ledger: Shared,
    probes: HashMap<String, watch::Sender<i64>>,
    stop: Shutdown,
) -> anyhow::Result<()> {
    let (client, mut connection) = db
        .connect(NoTls)
        .await
        .context("connecting the bench's listener")?;
    let wake = Arc::new(Notify::new());
    let woken = wake.clone();
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(_) = m? {
                woken.notify_one();
            }
        }
        Ok::<_, tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let stmt = client.prepare(NEW_ROWS).await?;
    let kind = ChangeKind::Realtime.as_str();
    let mut after: i64 = 0;
    while !stop.is_cancelled() {
        let rows = client.query(&stmt, &[&after, &kind]).await?;
        let read = now_us();
        {
            let mut ledger = ledger.lock().expect("poisoned");
            for r in &rows {
                let (event, observed): (&str, i64) = (r.get("event_id"), r.get("observed_ms"));
                if ledger.row(event, observed, read, r.get("logged_us"))
                    && let Some(probe) = probes.get(event)
                {
                    probe.send_replace(observed);
                }
            }
        }
        if let Some(last) = rows.last() {
            after = last.get("id");
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => {}
        }
    }
    driver.abort();
    Ok(())
}

/// Asks the API for `event` each time the watcher finds a new snapshot of it, until it answers
/// that one (or a newer one), noting the first answer showing each.
pub async fn api(
    http: reqwest::Client,
    url: String,
    key: String,
    event: String,
    mut target: watch::Receiver<i64>,
    ledger: Shared,
) -> anyhow::Result<()> {
    while target.changed().await.is_ok() {
        let want = *target.borrow_and_update();
        let give_up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < give_up {
            let body: serde_json::Value = http
                .get(&url)
                .header("x-api-key", &key)
                .send()
                .await?
                .error_for_status()
                .context("the attendance route")?
                .json()
                .await?;
            let at = now_us();
            if let Some(shown) = observed_ms(&body)
                && shown >= want
            {
                ledger.lock().expect("poisoned").api(&event, shown, at);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// `realtime.observedAt` of an attendance answer, in epoch ms.
fn observed_ms(body: &serde_json::Value) -> Option<i64> {
    let at = body["realtime"]["observedAt"].as_str()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(at)
            .ok()?
            .timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_answer_names_the_snapshot_by_its_time() {
        let body = serde_json::json!({"eventId": "bench-1",
            "realtime": {"observedAt": "2026-12-07T20:00:01.234Z", "currentAttendees": 5}});
        assert_eq!(observed_ms(&body), Some(1_796_673_601_234));
        // The simulator's own offset names the same instant.
        let body = serde_json::json!({"realtime": {"observedAt": "2026-12-08T05:00:01.234+09:00"}});
        assert_eq!(observed_ms(&body), Some(1_796_673_601_234));
        assert_eq!(observed_ms(&serde_json::json!({"realtime": null})), None);
    }
}
