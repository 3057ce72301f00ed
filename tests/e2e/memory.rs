//! The API's in-memory view against a real `muster project` and two `muster api` processes:
//! a projection commit is served from memory once the change feed brings it (a row changed
//! behind the feed's back is not seen, which shows the answer came from memory), a revoked key
//! stops working on every process, `NOTIFY muster_reload` reloads every view, and a process
//! whose feed is cut answers from PostgreSQL and says so in `/readyz` until the feed is back.

use crate::common;

use std::time::Duration;

use common::api::{Api, Auth, start_api};
use common::wait_for;
use reqwest::Method;
use serde_json::{Value, json};

use crate::stream::Live;

const PATIENCE: Duration = Duration::from_secs(60);

/// The state of the in-memory view's readiness part of `api`.
async fn memory_state(api: &Api) -> Option<String> {
    let res = api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .ok()?;
    let body: Value = res.json().await.ok()?;
    body["parts"]["api.memory"]["state"]
        .as_str()
        .map(str::to_owned)
}

async fn wait_memory(api: &Api, state: &str) {
    wait_for(
        &format!("the view {state} at {}", api.base),
        PATIENCE,
        || async move { (memory_state(api).await.as_deref() == Some(state)).then_some(()) },
    )
    .await;
}

/// The attendance `api` answers `key` for `event`: its status, current attendees and
/// minutes.
async fn attendance(api: &Api, key: &str, event: &str) -> (u16, Option<i64>, usize) {
    let path = format!("/api/partner/events/{event}/attendance");
    let (status, body) = api.get(Auth::Key(key), &path).await;
    let minutes = body["series"].as_array().map_or(0, Vec::len);
    (
        status,
        body["realtime"]["currentAttendees"].as_i64(),
        minutes,
    )
}

async fn wait_attendance(api: &Api, key: &str, event: &str, current: i64) {
    wait_for(
        &format!("{event} at {current} from {}", api.base),
        PATIENCE,
        || async move {
            let (status, now, minutes) = attendance(api, key, event).await;
            (status == 200 && now == Some(current) && minutes > 0).then_some(())
        },
    )
    .await;
}

/// A partner granted `event`: its id and key.
async fn partner(api: &Api, name: &str, event: &str) -> (String, String) {
    let (status, body) = api
        .admin(
            Method::POST,
            "/api/admin/partners",
            Some(json!({"name": name, "tier": "partner", "eventIds": [event]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let field = |f: &str| body[f].as_str().unwrap().to_owned();
    (field("partnerId"), field("apiKey"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_from_memory_kept_current_by_the_feed_on_every_process() {
    let run = common::run_id();
    let event = format!("mem{run}");
    let live = Live::start_with(&[&event], &["event_series"]).await;
    let (_other, other) = start_api(&live.dir, &[] as &[(&str, &str)]).await;
    let apis = [&live.api, &other];
    for api in apis {
        wait_memory(api, "ready").await;
    }
    let (revoked_id, revoked) = partner(&live.api, "revoked", &event).await;
    let (_, key) = partner(&live.api, "kept", &event).await;
    live.snapshot(&event, 7).await;
    for api in apis {
        wait_attendance(api, &key, &event, 7).await;
        wait_attendance(api, &revoked, &event, 7).await;
    }

    // Changed behind the feed's back (no change-log row): both views keep what was committed
    // through it; PostgreSQL would answer 999.
    let behind = "UPDATE event_realtime SET current_attendees = $2 WHERE event_id = $1";
    live.db.execute(behind, &[&event, &999i64]).await.unwrap();
    for api in apis {
        let (status, current, _) = attendance(api, &key, &event).await;
        assert_eq!(
            (status, current),
            (200, Some(7)),
            "{} answers from memory",
            api.base
        );
    }
    // A projection commit reaches both through the feed.
    live.snapshot(&event, 42).await;
    for api in apis {
        wait_attendance(api, &key, &event, 42).await;
    }

    // Revoked through one process: refused by both, the other key still served.
    let path = format!("/api/admin/partners/{revoked_id}");
    let (status, _) = live.api.admin(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    for api in apis {
        wait_for(
            &format!("the revoked key refused by {}", api.base),
            PATIENCE,
            || async { (attendance(api, &revoked, &event).await.0 == 401).then_some(()) },
        )
        .await;
        assert_eq!(attendance(api, &key, &event).await.0, 200);
    }

    // A hand fix behind the feed's back, then `NOTIFY muster_reload`: each view reloads whole.
    live.db.execute(behind, &[&event, &321i64]).await.unwrap();
    for api in apis {
        api.reload_view(&live.db).await;
        assert_eq!(attendance(api, &key, &event).await.1, Some(321));
    }

    // The feed cut, and no new connection allowed: the views are lost, `/readyz` says so
    // (still ready), and answers come from PostgreSQL, which sees the change behind its back.
    let database: String = live
        .db
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    let limit = |n: i32| format!("ALTER DATABASE \"{database}\" CONNECTION LIMIT {n}");
    live.db.batch_execute(&limit(0)).await.unwrap();
    live.db
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'muster api change feed'",
            &[],
        )
        .await
        .unwrap();
    for api in apis {
        wait_memory(api, "degraded").await;
        let ready = api
            .http
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "degraded still serves");
    }
    live.db.execute(behind, &[&event, &555i64]).await.unwrap();
    for api in apis {
        wait_attendance(api, &key, &event, 555).await;
    }
    live.db.batch_execute(&limit(-1)).await.unwrap();
    for api in apis {
        wait_memory(api, "ready").await;
        // Reloaded whole: what changed while it was gone is in the view.
        assert_eq!(attendance(api, &key, &event).await.1, Some(555));
    }
}
