//! Partner webhooks end to end: `muster api` and `muster webhooks` as processes, alerts produced
//! to Kafka, and real HTTP receivers on loopback. Signatures are checked by the reference
//! `standardwebhooks` library (PyPI), as a partner would.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::api::{Api, Auth, detail, start_api};
use common::hooks::{self, Behaviour, Received, Receivers, check, hooks_env};
use common::records::gate_down;
use common::{Run, Worker, db, free_port, wait_for};
use muster_schemas::{Alert, AlertAction};
use reqwest::Method;
use serde_json::{Value, json};

/// Gate `G{n}` of `event` down (or up again), at `at`.
fn alert(event: &str, n: i64, action: AlertAction, at: i64) -> Alert {
    gate_down(event, n, action, at, at)
}

/// Whether `event`'s messages 1 to `n` each got one 200 at the receiver that `got` them.
fn delivered_once(got: &[Received], event: &str, n: i64) -> bool {
    delivered(got, event) == (1..=n).collect::<Vec<_>>()
}

/// Sequence numbers of `event` that got a 200 at `receiver`.
fn delivered(got: &[Received], event: &str) -> Vec<i64> {
    let mut seqs: Vec<i64> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json())
        .filter(|b| b["data"]["eventId"] == event)
        .map(|b| b["data"]["sequence"].as_i64().unwrap())
        .collect();
    seqs.sort();
    seqs
}

/// `muster api` and `muster webhooks` (with `hooks` settings, its ops endpoint on `ops`), and a
/// partner granted `events` with its key.
async fn start(
    run: &Run,
    hooks: Vec<(&'static str, String)>,
    events: &[&str],
) -> (Worker, Api, Worker, String) {
    let (api_worker, api) = start_api(&run.dir, &hooks_env(&run.id, free_port())).await;
    let hooks_worker = Worker::start("webhooks", &["webhooks"], &hooks, &run.dir);
    let key = api.partner_key("partner", events).await;
    (api_worker, api, hooks_worker, key)
}

/// Alerts of `probe` until `receiver` got a request: from then on the outbox consumes.
async fn wait_for_a_delivery(run: &Run, receivers: &Receivers, receiver: &str, probe: &str) {
    let producer = common::producer(&run.services);
    let t0 = chrono::Utc::now().timestamp_millis();
    let mut n = 0;
    wait_for("the first delivery", Duration::from_secs(90), || {
        n += 1;
        let a = alert(probe, n, AlertAction::Raised, t0 + n);
        let (producer, receivers) = (&producer, receivers);
        async move {
            common::send(producer, &run.codec, &a).await;
            (!receivers.got(receiver).is_empty()).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partners_get_signed_ordered_deliveries_through_failures_kills_and_replays() {
    let r = Run::begin();
    let (run, dir) = (&r.id, &r.dir);
    let receivers = Receivers::default();
    receivers.add("flaky", Behaviour::FailTwiceThenOk);
    receivers.add("gone", Behaviour::Always(410));
    receivers.add("down", Behaviour::Always(500));
    receivers.add("slow", Behaviour::Slow(Duration::from_millis(1500)));
    let port = receivers.clone().serve().await;
    let hook = |name: &str| format!("http://127.0.0.1:{port}/hook/{name}");

    let (e1, e2, probe, other) = (
        format!("wh1{run}"),
        format!("wh2{run}"),
        format!("whp{run}"),
        format!("whx{run}"),
    );
    let ops = free_port();
    let (_api_worker, api, mut hooks_worker, key) =
        start(&r, hooks_env(run, ops), &[&e1, &e2, &probe]).await;
    let post = Method::POST;

    // Loopback outside the allow-list, private and link-local URLs are refused.
    for url in [
        "http://10.1.2.3/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("http://127.0.0.2:{port}/hook/flaky"),
        format!("http://[::1]:{port}/hook/flaky"),
    ] {
        let (status, body) = api
            .call(
                post.clone(),
                "/api/partner/webhooks",
                Auth::Key(&key),
                Some(json!({"url": url, "eventTypes": ["alert.raised"]})),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
    }
    let (status, body) = api
        .call(
            post.clone(),
            "/api/partner/webhooks",
            Auth::Key(&key),
            Some(json!({"url": hook("flaky"), "eventTypes": ["alert.bogus"]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let mut endpoints: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for (name, types, schedule) in [
        (
            "flaky",
            json!(["alert.raised", "alert.resolved"]),
            Value::Null,
        ),
        ("gone", json!(["alert.raised"]), Value::Null),
        (
            "down",
            json!(["alert.raised"]),
            json!([0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]),
        ),
        ("slow", json!(["alert.resolved"]), Value::Null),
    ] {
        let mut req = json!({"url": hook(name), "eventTypes": types});
        if !schedule.is_null() {
            req["retrySchedule"] = schedule;
        }
        let (status, body) = api
            .call(
                post.clone(),
                "/api/partner/webhooks",
                Auth::Key(&key),
                Some(req),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let secret = body["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        endpoints.insert(name, (body["id"].as_str().unwrap().to_owned(), secret));
    }
    let (_, list) = api.get(Auth::Key(&key), "/api/partner/webhooks").await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 4);
    assert!(
        !list.to_string().contains("whsec_"),
        "a listing shows a secret"
    );

    // Probe until the outbox consumes (it starts at the topics' end).
    wait_for_a_delivery(&r, &receivers, "flaky", &probe).await;
    let (codec, producer) = (&r.codec, common::producer(&r.services));
    let t0 = chrono::Utc::now().timestamp_millis();

    // Ten alerts for e1, five for e2, and three for an event the partner was not granted.
    for i in 0..10 {
        for (event, alerts, at) in [(&e1, 10, t0 + 1000), (&e2, 5, t0 + 1000), (&other, 3, t0)] {
            if i < alerts {
                let a = alert(event, i, AlertAction::Raised, at + i);
                common::send(&producer, codec, &a).await;
            }
        }
    }
    wait_for("every e1 and e2 delivery", Duration::from_secs(90), || {
        let got = receivers.got("flaky");
        let done = delivered_once(&got, &e1, 10) && delivered_once(&got, &e2, 5);
        async move { done.then_some(()) }
    })
    .await;
    let got = receivers.got("flaky");
    assert!(
        !got.iter().any(|r| r.body.contains(&other)),
        "an event the partner was not granted was delivered"
    );
    // Each message: exactly three attempts (500, 503, 200), one success; first attempts and
    // successes in sequence order per event (a message waits while an earlier one is retried).
    let mut attempts: HashMap<String, Vec<u16>> = HashMap::new();
    let mut first_seen: Vec<(String, i64)> = Vec::new();
    let mut succeeded: Vec<(String, i64)> = Vec::new();
    for r in got.iter().filter(|r| !r.body.contains(&probe)) {
        let statuses = attempts.entry(r.id.clone()).or_default();
        let b = r.json();
        let at = (
            b["data"]["eventId"].as_str().unwrap().to_owned(),
            b["data"]["sequence"].as_i64().unwrap(),
        );
        if statuses.is_empty() {
            first_seen.push(at.clone());
        }
        if r.status == 200 {
            succeeded.push(at);
        }
        statuses.push(r.status);
    }
    assert_eq!(attempts.len(), 15);
    for (id, statuses) in &attempts {
        assert_eq!(statuses, &[500, 503, 200], "{id}");
    }
    let sequences = |of: &[(String, i64)], e: &str| -> Vec<i64> {
        of.iter()
            .filter(|(ev, _)| ev == e)
            .map(|(_, s)| *s)
            .collect()
    };
    for e in [&e1, &e2] {
        let order = sequences(&first_seen, e);
        assert!(
            order.is_sorted(),
            "first attempts out of order for {e}: {order:?}"
        );
        let order = sequences(&succeeded, e);
        assert!(
            order.is_sorted(),
            "successes out of order for {e}: {order:?}"
        );
    }
    let b = got.last().unwrap().json();
    assert_eq!(b["type"], "alert.raised");
    assert!(
        b["data"]["alertId"]
            .as_str()
            .unwrap()
            .contains(":gate-down:")
    );

    // The delivery log shows it.
    let (flaky_id, flaky_secret) = endpoints["flaky"].clone();
    // The receiver's 200 comes before the dispatcher records it: wait for the record.
    let log =
        wait_for(
            "the e1 deliveries in the log",
            Duration::from_secs(60),
            || {
                let (api, key, flaky_id, e1) = (&api, &key, &flaky_id, &e1);
                async move {
                    let (status, log) = api
                    .get(Auth::Key(key), &format!(
                            "/api/partner/webhooks/{flaky_id}/deliveries?state=delivered&limit=1000"
                        ))
                    .await;
                    assert_eq!(status, 200, "{log}");
                    let delivered = log["deliveries"]
                        .as_array()?
                        .iter()
                        .filter(|d| d["eventId"] == e1.as_str())
                        .count();
                    (delivered >= 10).then_some(log)
                }
            },
        )
        .await;
    let rows = log["deliveries"].as_array().unwrap();
    let e1_rows: Vec<&Value> = rows
        .iter()
        .filter(|d| d["eventId"] == e1.as_str())
        .collect();
    assert_eq!(e1_rows.len(), 10);
    for d in &e1_rows {
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["lastStatus"], 200);
        assert!(d["lastLatencyMs"].as_i64().is_some());
    }

    // A receiver answering 410 gets its endpoint disabled at once; one failing for longer
    // than disable_after (15 s) too, each with the reason shown to the partner.
    for (name, reason) in [("gone", "410"), ("down", "every attempt failed")] {
        let id = endpoints[name].0.clone();
        let e = wait_for(&format!("{name} disabled"), Duration::from_secs(90), || {
            let (api, key, id) = (&api, &key, &id);
            async move {
                let (_, e) = api
                    .get(Auth::Key(key), &format!("/api/partner/webhooks/{id}"))
                    .await;
                (!e["disabledAt"].is_null()).then_some(e)
            }
        })
        .await;
        assert!(
            e["disabledReason"].as_str().unwrap().contains(reason),
            "{e}"
        );
    }

    // Kill the dispatcher while the slow receiver holds requests, restart it: nothing is lost.
    let before = receivers.got("slow").len();
    for i in 0..6 {
        common::send(
            &producer,
            codec,
            &alert(&e1, 100 + i, AlertAction::Resolved, t0 + 5000 + i),
        )
        .await;
    }
    wait_for("a slow request in flight", Duration::from_secs(60), || {
        let n = receivers.got("slow").len();
        async move { (n > before).then_some(()) }
    })
    .await;
    hooks_worker.kill_hard();
    let _hooks_worker = Worker::start("webhooks", &["webhooks"], &hooks_env(run, ops), dir);
    wait_for(
        "every resolved alert at the slow receiver",
        Duration::from_secs(120),
        || {
            let got = receivers.got("slow");
            let e1 = e1.clone();
            async move {
                let mut seqs = delivered(&got, &e1);
                seqs.dedup();
                (seqs == (1..=6).collect::<Vec<_>>()).then_some(())
            }
        },
    )
    .await;

    // Rotate the flaky endpoint's secret (the old one signs too for an hour), then replay one
    // delivery: the same message id comes again, signed with both.
    let (status, rotated) = api
        .call(
            post.clone(),
            &format!("/api/partner/webhooks/{flaky_id}/rotate-secret"),
            Auth::Key(&key),
            Some(json!({"graceSeconds": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let first = e1_rows.last().unwrap();
    let (status, replayed) = api
        .call(
            post.clone(),
            &format!("/api/partner/webhooks/{flaky_id}/replay"),
            Auth::Key(&key),
            Some(json!({"deliveryId": first["id"]})),
        )
        .await;
    assert_eq!(
        (status, replayed["queued"].as_i64()),
        (202, Some(1)),
        "{replayed}"
    );
    let message_id = first["messageId"].as_str().unwrap().to_owned();
    let again = wait_for("the replayed message", Duration::from_secs(60), || {
        let got = receivers.got("flaky");
        let message_id = message_id.clone();
        async move {
            let n = got.iter().filter(|r| r.id == message_id).count();
            (n == 4).then(|| got.into_iter().rfind(|r| r.id == message_id).unwrap())
        }
    })
    .await;

    assert_eq!(again.signature.split(' ').count(), 2, "{}", again.signature);

    // The reference library verifies every request with the old secret (it signs through the
    // grace period), and the replay with the new one.
    let mut checks: Vec<Value> = Vec::new();
    for r in receivers.got("flaky") {
        checks.push(check(&flaky_secret, &r));
    }
    checks.push(check(&new_secret, &again));
    let slow_secret = &endpoints["slow"].1;
    for r in receivers.got("slow") {
        checks.push(check(slow_secret, &r));
    }
    // And a forged one fails, so the check can fail.
    let mut forged = check(&new_secret, &again);
    forged["body"] = json!(format!("{} ", again.body));
    forged["expect"] = json!(false);
    checks.push(forged);
    let out = hooks::third_party(dir, "verify_webhooks.py", &checks);
    assert!(
        out.contains(&format!("{} verified", checks.len() - 1)),
        "{out}"
    );

    // Every message any receiver got is valid against its type's schema in the catalogue.
    let mut bodies = Vec::new();
    for name in ["flaky", "gone", "down", "slow"] {
        bodies.extend(receivers.got(name).into_iter().map(|r| r.body));
    }
    hooks::validate_messages(&api, &key, dir, &bodies).await;
}

/// An alert whose message holds a NUL (PostgreSQL refuses it in the delivery's jsonb), in the
/// middle of a burst of other events' alerts: every other alert is delivered, the bad one is
/// recorded in `dead_letters` with PostgreSQL's message and published once, the outbox never
/// restarts, and later alerts are delivered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_the_outbox_cannot_store_is_dead_lettered_and_other_events_are_delivered() {
    let r = Run::begin();
    let run = &r.id;
    let receivers = Receivers::default();
    receivers.add("ok", Behaviour::Always(200));
    let port = receivers.clone().serve().await;

    let (g1, g2, bad, probe) = (
        format!("whg1{run}"),
        format!("whg2{run}"),
        format!("whb{run}"),
        format!("whq{run}"),
    );
    let ops = free_port();
    let mut hooks = hooks_env(run, ops);
    // One batch for the whole burst.
    hooks.push(("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "3s".into()));
    let (_api_worker, api, mut hooks_worker, key) =
        start(&r, hooks, &[&g1, &g2, &bad, &probe]).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/api/partner/webhooks",
            Auth::Key(&key),
            Some(json!({"url": format!("http://127.0.0.1:{port}/hook/ok"), "eventTypes": ["alert.raised"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    wait_for_a_delivery(&r, &receivers, "ok", &probe).await;
    let (codec, producer) = (&r.codec, common::producer(&r.services));
    let t0 = chrono::Utc::now().timestamp_millis();

    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let mut poisoned = alert(&bad, 1, AlertAction::Raised, t0 + 1500);
    poisoned.message = "gate G1\0 down".into();
    let burst: Vec<Alert> = (0..11i64)
        .map(|i| match i {
            0..5 => alert(&g1, i, AlertAction::Raised, t0 + 1000 + i),
            5 => poisoned.clone(),
            _ => alert(&g2, i, AlertAction::Raised, t0 + 2000 + i),
        })
        .collect();
    let bad_at = common::kafka::send_burst(&producer, codec, &burst).await[5];

    wait_for(
        "every good alert delivered",
        Duration::from_secs(90),
        || {
            let got = receivers.got("ok");
            let done = delivered_once(&got, &g1, 5) && delivered_once(&got, &g2, 5);
            async move { done.then_some(()) }
        },
    )
    .await;
    assert!(
        !receivers.got("ok").iter().any(|r| r.body.contains(&bad)),
        "the refused alert was delivered"
    );

    let client = db::connect(&r.services.database).await;
    let (rows, published) = common::kafka::dead_letters_of(
        &r.services,
        codec,
        &client,
        &common::topic::<Alert>(),
        bad_at,
        1,
        since,
    )
    .await;
    let row = &rows[0];
    assert_eq!(row.get::<_, String>(0), "project:webhook_outbox");
    let reason: String = row.get(1);
    assert!(reason.contains("SQLSTATE 22P05"), "{reason}");
    assert_eq!(row.get::<_, Option<String>>(2), Some(bad.clone()));
    assert_eq!(published.len(), 1, "published once: {published:?}");
    assert_eq!(published[0].error, reason);

    let restarts = common::projection_restarts(ops).await;
    assert!(restarts.is_empty(), "the outbox restarted: {restarts:?}");
    common::send(
        &producer,
        codec,
        &alert(&g1, 50, AlertAction::Raised, t0 + 3000),
    )
    .await;
    wait_for(
        "an alert after the bad one",
        Duration::from_secs(60),
        || {
            let done = delivered_once(&receivers.got("ok"), &g1, 6);
            async move { done.then_some(()) }
        },
    )
    .await;
    hooks_worker.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_per_partner_and_replays_are_capped() {
    let r = Run::begin();
    let mut env = hooks_env(&r.id, free_port());
    env.push(("MUSTER__WEBHOOKS__MAX_ENDPOINTS_PER_PARTNER", "2".into()));
    env.push(("MUSTER__WEBHOOKS__MAX_REPLAY", "3".into()));
    let (_api_worker, api) = start_api(&r.dir, &env).await;
    let post = Method::POST;
    let key = api.partner_key("partner", &[&format!("cap{}", r.id)]).await;
    let create = |n: usize| {
        api.call(
            post.clone(),
            "/api/partner/webhooks",
            Auth::Key(&key),
            Some(json!({"url": format!("http://127.0.0.1:9/hook/{n}"), "eventTypes": ["alert.raised"]})),
        )
    };
    let (status, first) = create(1).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(create(2).await.0, 201);
    let (status, body) = create(3).await;
    assert_eq!(status, 422, "{body}");
    assert!(detail(&body).contains("at most 2 webhooks"), "{body}");

    // Five deliveries in the log, one minute apart.
    let endpoint = first["id"].as_str().unwrap().to_owned();
    let db = db::connect(&r.services.database).await;
    db.execute(
        "INSERT INTO webhook_deliveries (delivery_id, message_id, endpoint_id, event_id, seq,
            event_type, occurred_at, payload, state)
         SELECT $1 || n, $1 || n, $1, 'e', n, 'alert.raised',
                '2026-01-01T00:00:00Z'::timestamptz + n * interval '1 minute', '{}', 'delivered'
         FROM generate_series(0, 4) n",
        &[&endpoint],
    )
    .await
    .unwrap();
    let replay_path = format!("/api/partner/webhooks/{endpoint}/replay");
    let replay = |from: &str, to: &str| {
        api.call(
            post.clone(),
            &replay_path,
            Auth::Key(&key),
            Some(json!({"from": from, "to": to})),
        )
    };
    let (status, body) = replay("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z").await;
    assert_eq!(status, 422, "{body}");
    assert!(detail(&body).contains("more than 3 deliveries"), "{body}");
    let replays =
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND replay_of IS NOT NULL";
    let queued: i64 = db.query_one(replays, &[&endpoint]).await.unwrap().get(0);
    assert_eq!(queued, 0, "a refused replay queues nothing");
    let (status, body) = replay("2026-01-01T00:00:00Z", "2026-01-01T00:03:00Z").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"], 3);
    let queued: i64 = db.query_one(replays, &[&endpoint]).await.unwrap().get(0);
    assert_eq!(queued, 3);
}
