//! The change feed and `GET /api/partner/stream` against a real `muster project` and `muster
//! api`: a partner receives the changes of its events as they are committed, never another
//! partner's; a stream resumed with `Last-Event-ID` gets every change in between (compared with
//! the `change_log` table), none twice; an id older than the log gets a `reset`.

use crate::common;

use std::time::Duration;

use common::api::{Api, Auth, start_api};
use common::records::normalized;
use common::sse::{Message, Stream};
use common::{Run, Worker, db, free_port, producer, send, wait_for, worker_env};
use muster_schemas::{CatalogueEntry, Codec, NormalizedMetrics};
use rdkafka::producer::FutureProducer;
use reqwest::Method;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(90);

fn catalogue(event: &str) -> CatalogueEntry {
    CatalogueEntry {
        event_id: event.to_owned(),
        service_name: "test".into(),
        name: format!("Fair {event}"),
        event_type: "exhibition".into(),
        venue: None,
        capacity: Some(2000),
        starts_at: None,
        ends_at: None,
        utc_offset_minutes: Some(540),
        ticket_price: None,
        cost_total: None,
        other_income: None,
        currency: None,
        removed: false,
        at: chrono::Utc::now().timestamp_millis(),
    }
}

fn snapshot(event: &str, current: i64) -> NormalizedMetrics {
    normalized(event, chrono::Utc::now().timestamp_millis(), current)
}

/// The catalogue and realtime projections and the API, with `events` registered and projected
/// (listed, with numbers). `projections` adds more projections to the two.
pub(crate) struct Live {
    codec: Codec,
    producer: FutureProducer,
    pub(crate) api: Api,
    pub(crate) db: tokio_postgres::Client,
    /// The run's folder, where more workers can start.
    pub(crate) dir: std::path::PathBuf,
    _project: Worker,
    _api: Worker,
}

impl Live {
    async fn start(events: &[&str]) -> Self {
        Self::start_with(events, &[]).await
    }

    pub(crate) async fn start_with(events: &[&str], projections: &[&str]) -> Self {
        let (services, run, dir, codec) = Run::begin().parts();
        let env = worker_env(&format!("s{run}"), free_port());
        let mut args = vec![
            "project",
            "--only",
            "event_catalogue",
            "--only",
            "event_realtime",
        ];
        for p in projections {
            args.extend(["--only", p]);
        }
        let project = Worker::start("project-stream", &args, &env, &dir);
        // Grants are checked again after a second (the revocation test waits for it).
        let (api_worker, api) =
            start_api(&dir, &[("MUSTER__API__FEED__RECHECK_GRANTS", "1s")]).await;
        let live = Self {
            db: db::connect(&services.database).await,
            producer: producer(&services),
            codec,
            api,
            dir,
            _project: project,
            _api: api_worker,
        };
        // Re-sent until consumed: the workers start at the topics' ends.
        wait_for("the events listed with numbers", PATIENCE, || {
            let live = &live;
            async move {
                for e in events {
                    send(&live.producer, &live.codec, &catalogue(e)).await;
                    send(&live.producer, &live.codec, &snapshot(e, 1)).await;
                }
                let body =
                    common::get_json(&format!("{}/api/public/events", live.api.base)).await?;
                let listed = body["events"]
                    .as_array()?
                    .iter()
                    .filter(|e| {
                        events.contains(&e["eventId"].as_str().unwrap_or_default())
                            && e["status"] == "live"
                    })
                    .count();
                (listed == events.len()).then_some(())
            }
        })
        .await;
        live
    }

    pub(crate) async fn snapshot(&self, event: &str, current: i64) {
        send(&self.producer, &self.codec, &snapshot(event, current)).await;
    }

    /// The ids of the change log's rows of `events` after `after`, every kind (the start's
    /// re-sent catalogue entries can land among the numbers), in order.
    async fn logged(&self, events: &[&str], after: i64) -> Vec<i64> {
        self.db
            .query(
                "SELECT id FROM change_log
                 WHERE id > $1 AND event_id = ANY($2) ORDER BY id",
                &[&after, &events],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Waits until `event`'s latest numbers are `current`, and returns the id of the change
    /// that recorded them.
    async fn projected(&self, event: &str, current: i64) -> i64 {
        wait_for(&format!("{event} at {current}"), PATIENCE, || async move {
            let n: i64 = self
                .db
                .query_one(
                    "SELECT current_attendees FROM event_realtime WHERE event_id = $1",
                    &[&event],
                )
                .await
                .ok()?
                .get(0);
            (n == current).then_some(())
        })
        .await;
        // The numbers and the change row commit together.
        self.db
            .query_one(
                "SELECT max(id) FROM change_log WHERE event_id = $1 AND kind = 'realtime'",
                &[&event],
            )
            .await
            .unwrap()
            .get(0)
    }
}

fn is_ready(m: &Message) -> bool {
    m.event == "ready"
}

/// The change `m` carries: its event id and current attendees.
fn numbers(m: &Message) -> (String, Option<i64>) {
    (
        m.data["eventId"].as_str().unwrap_or_default().to_owned(),
        m.data["event"]["currentAttendees"].as_i64(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_receives_its_events_changes_and_never_another_partners() {
    let run = common::run_id();
    let (mine, theirs) = (format!("sa{run}"), format!("sb{run}"));
    let live = Live::start(&[&mine, &theirs]).await;
    let my_key = live.api.partner_key("partner", &[&mine]).await;
    let their_key = live.api.partner_key("partner", &[&theirs]).await;

    let mut stream = Stream::open(&live.api, Auth::Key(&my_key), None).await;
    let ready = stream.next(PATIENCE).await;
    assert_eq!(ready.event, "ready", "{ready:?}");
    let mut admin = Stream::open(&live.api, Auth::Bearer(common::api::ADMIN), None).await;
    assert_eq!(admin.next(PATIENCE).await.event, "ready");

    // The other partner's event changes first, then mine; once mine arrives, theirs (committed
    // before it) would have too.
    live.snapshot(&theirs, 555).await;
    let theirs_at = live.projected(&theirs, 555).await;
    live.snapshot(&mine, 777).await;
    let seen = stream
        .until(PATIENCE, |m| numbers(m) == (mine.clone(), Some(777)))
        .await;
    let last = seen.last().unwrap();
    assert_eq!(last.event, "realtime");
    assert!(last.id.unwrap() > theirs_at, "{seen:?}");
    assert_eq!(last.data["event"]["name"], format!("Fair {mine}"));
    assert_eq!(last.data["event"]["status"], "live");
    assert_eq!(last.data["kind"], "realtime");
    assert!(
        seen.iter().all(|m| m.data["eventId"] != theirs.as_str()),
        "another partner's event reached this key: {seen:?}"
    );

    // The admin sees every event; the other key its own.
    admin
        .until(PATIENCE, |m| numbers(m) == (theirs.clone(), Some(555)))
        .await;
    let mut other = Stream::open(&live.api, Auth::Key(&their_key), Some(theirs_at - 1)).await;
    let seen = other.until(PATIENCE, is_ready).await;
    assert!(
        seen.iter()
            .filter(|m| m.is_change())
            .all(|m| m.data["eventId"] == theirs.as_str()),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|m| m.id == Some(theirs_at)),
        "resumed just before its change: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_last_event_id_loses_no_change_and_repeats_none() {
    let run = common::run_id();
    let (a, b, other) = (format!("ra{run}"), format!("rb{run}"), format!("rc{run}"));
    let live = Live::start(&[&a, &b, &other]).await;
    let key = live.api.partner_key("partner", &[&a, &b]).await;

    let mut stream = Stream::open(&live.api, Auth::Key(&key), None).await;
    assert_eq!(stream.next(PATIENCE).await.event, "ready");
    live.snapshot(&a, 10).await;
    let first = stream
        .until(PATIENCE, |m| numbers(m) == (a.clone(), Some(10)))
        .await;
    let last_seen = first.last().unwrap().id.unwrap();
    drop(stream);

    // Changes while disconnected: the granted events' and another's, over several batches.
    for i in 1..=5 {
        live.snapshot(&a, 100 + i).await;
        live.snapshot(&other, 300 + i).await;
        live.snapshot(&b, 200 + i).await;
        live.projected(&b, 200 + i).await;
    }
    let missed = live.logged(&[&a, &b], last_seen).await;
    assert!(missed.len() >= 5, "{missed:?}");

    let mut resumed = Stream::open(&live.api, Auth::Key(&key), Some(last_seen)).await;
    let backlog = resumed.until(PATIENCE, is_ready).await;
    let ready = backlog.last().unwrap();
    let got: Vec<i64> = backlog
        .iter()
        .filter(|m| m.is_change())
        .map(|m| m.id.unwrap())
        .collect();
    // Everything of the two events the log holds up to where the stream caught up.
    let want = live.logged(&[&a, &b], last_seen).await;
    let want: Vec<i64> = want
        .into_iter()
        .filter(|id| *id <= ready.id.unwrap())
        .collect();
    let sent: Vec<_> = backlog
        .iter()
        .map(|m| (m.id, m.event.clone(), numbers(m)))
        .collect();
    assert_eq!(
        got, want,
        "every change in between, once, in order; after {last_seen} the stream sent {sent:?}"
    );
    assert!(backlog.iter().all(|m| m.data["eventId"] != other.as_str()));
    let (_, latest_b) = numbers(
        backlog
            .iter()
            .rev()
            .find(|m| m.data["eventId"] == b.as_str())
            .unwrap(),
    );
    assert_eq!(
        latest_b,
        Some(205),
        "changes carry the event's newest numbers"
    );

    // Live again after the backlog, with no repeat.
    live.snapshot(&a, 999).await;
    let more = resumed
        .until(PATIENCE, |m| numbers(m) == (a.clone(), Some(999)))
        .await;
    assert!(more.iter().all(|m| m.id.unwrap() > ready.id.unwrap()));

    // An id older than the log keeps (pruned here as retention would) gets a reset to the
    // newest, then live changes.
    live.db
        .execute(
            "DELETE FROM change_log WHERE id < (SELECT max(id) FROM change_log)",
            &[],
        )
        .await
        .unwrap();
    let head: i64 = live
        .db
        .query_one("SELECT max(id) FROM change_log", &[])
        .await
        .unwrap()
        .get(0);
    let mut stale = Stream::open(&live.api, Auth::Key(&key), Some(last_seen)).await;
    let reset = stale.next(PATIENCE).await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    assert_eq!(reset.id, Some(head));
    assert_eq!(reset.data["lastEventId"], head);
    assert_eq!(stale.next(PATIENCE).await.event, "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_its_stream_and_bad_ids_are_refused() {
    let run = common::run_id();
    let event = format!("rv{run}");
    let live = Live::start(&[&event]).await;
    let (status, created) = live
        .api
        .admin(
            Method::POST,
            "/api/admin/partners",
            Some(json!({"name": "streamer", "tier": "partner", "eventIds": [&event]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["apiKey"].as_str().unwrap();

    for bad in ["-1", "abc"] {
        let res = live
            .api
            .request(Method::GET, "/api/partner/stream", Auth::Key(key))
            .header("last-event-id", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "Last-Event-ID {bad}");
    }
    let (status, _) = live.api.get(Auth::None, "/api/partner/stream").await;
    assert_eq!(status, 401);

    let mut stream = Stream::open(&live.api, Auth::Key(key), None).await;
    assert_eq!(stream.next(PATIENCE).await.event, "ready");
    let path = format!(
        "/api/admin/partners/{}",
        created["partnerId"].as_str().unwrap()
    );
    let (status, _) = live.api.admin(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    // Changes keep coming; the next one after the grants' check is due ends the stream.
    let ticker = {
        let (producer, codec, event) = (live.producer.clone(), live.codec.clone(), event.clone());
        tokio::spawn(async move {
            for i in 0.. {
                send(&producer, &codec, &snapshot(&event, 10 + i)).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let seen = stream.until(PATIENCE, |m| m.event == "revoked").await;
    ticker.abort();
    assert!(stream.closed(PATIENCE).await, "the stream ends: {seen:?}");
}
