//! Partner webhooks end to end: `muster api` and `muster webhooks` as processes, alerts produced
//! to Kafka, and real HTTP receivers on loopback. Signatures are checked by the reference
//! `standardwebhooks` library (PyPI), as a partner would.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Services, Worker, free_port, run_id, scratch_dir, wait_for};
use muster_schemas::{Alert, AlertAction, AlertKind, Codec, Severity, SourceOffset, TopicRecord};
use serde_json::{Value, json};

const ADMIN: &str = "webhooks-test-admin-token-0123456789";

/// One request a receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How a receiver answers the n-th attempt (1-based) of a message.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 500, then 503 with `Retry-After: 1`, then 200.
    FailTwiceThenOk,
    Always(u16),
    /// 200 after a pause.
    Slow(Duration),
}

/// Each receiver's behaviour and what it got, by name (the last path segment).
type Log = HashMap<String, (Behaviour, Vec<Received>)>;

#[derive(Clone, Default)]
struct Receivers(Arc<Mutex<Log>>);

impl Receivers {
    fn add(&self, name: &str, b: Behaviour) {
        self.0.lock().unwrap().insert(name.into(), (b, Vec::new()));
    }

    fn got(&self, name: &str) -> Vec<Received> {
        self.0.lock().unwrap()[name].1.clone()
    }

    async fn serve(self) -> u16 {
        use warp::Filter;
        let port = free_port();
        let me = self.clone();
        let route = warp::post()
            .and(warp::path!("hook" / String))
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |name: String, h: warp::http::HeaderMap, body: warp::hyper::body::Bytes| {
                    let me = me.clone();
                    async move {
                        let header = |n: &str| {
                            h.get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let id = header("webhook-id");
                        let (behaviour, attempt) = {
                            let map = me.0.lock().unwrap();
                            let (b, got) = &map[&name];
                            (*b, got.iter().filter(|r| r.id == id).count() + 1)
                        };
                        let (status, retry_after) = match behaviour {
                            Behaviour::FailTwiceThenOk => match attempt {
                                1 => (500, None),
                                2 => (503, Some("1")),
                                _ => (200, None),
                            },
                            Behaviour::Always(s) => (s, None),
                            Behaviour::Slow(pause) => {
                                tokio::time::sleep(pause).await;
                                (200, None)
                            }
                        };
                        me.0.lock()
                            .unwrap()
                            .get_mut(&name)
                            .unwrap()
                            .1
                            .push(Received {
                                id,
                                timestamp: header("webhook-timestamp"),
                                signature: header("webhook-signature"),
                                body: String::from_utf8_lossy(&body).into_owned(),
                                status,
                            });
                        let mut res = warp::http::Response::builder().status(status);
                        if let Some(r) = retry_after {
                            res = res.header("retry-after", r);
                        }
                        res.body(String::new()).unwrap()
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        port
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match key {
            Some(k) => req.header("x-api-key", k),
            None => req.bearer_auth(ADMIN),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

fn alert(event: &str, n: i64, action: AlertAction, at: i64) -> Alert {
    Alert {
        alert_id: format!("{event}:gate-down:G{n}@{at}"),
        event_id: event.into(),
        kind: AlertKind::GateDown,
        subject: Some(format!("G{n}")),
        action,
        severity: Severity::Warning,
        message: format!("gate G{n} down"),
        raised_at: at,
        at,
        duration_ms: None,
        source: SourceOffset {
            topic: "test".into(),
            partition: 0,
            offset: n,
        },
    }
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

fn worker_env(run: &str, ops: u16) -> Vec<(&'static str, String)> {
    vec![
        ("MUSTER__KAFKA__GROUP_PREFIX", format!("w{run}")),
        ("MUSTER__KAFKA__AUTO_OFFSET_RESET", "latest".into()),
        ("MUSTER__OPS__ADDR", format!("127.0.0.1:{ops}")),
        (
            "MUSTER__WEBHOOKS__ALLOW_NETWORKS",
            "[\"127.0.0.1/32\"]".into(),
        ),
        (
            "MUSTER__WEBHOOKS__RETRY_SCHEDULE_SECS",
            "[0, 1, 1, 1, 1, 1]".into(),
        ),
        ("MUSTER__WEBHOOKS__JITTER", "0".into()),
        ("MUSTER__WEBHOOKS__DISABLE_AFTER", "15s".into()),
        ("MUSTER__WEBHOOKS__REQUEST_TIMEOUT", "10s".into()),
        ("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "100ms".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partners_get_signed_ordered_deliveries_through_failures_kills_and_replays() {
    let s = Services::from_env();
    let run = run_id();
    let dir = scratch_dir(&run);
    let receivers = Receivers::default();
    receivers.add("flaky", Behaviour::FailTwiceThenOk);
    receivers.add("gone", Behaviour::Always(410));
    receivers.add("down", Behaviour::Always(500));
    receivers.add("slow", Behaviour::Slow(Duration::from_millis(1500)));
    let port = receivers.clone().serve().await;
    let hook = |name: &str| format!("http://127.0.0.1:{port}/hook/{name}");

    let api_port = free_port();
    let mut api_env = worker_env(&run, free_port());
    api_env.push(("MUSTER_API_ADDR", format!("127.0.0.1:{api_port}")));
    api_env.push(("MUSTER_ADMIN_TOKEN", ADMIN.into()));
    let _api_worker = Worker::start("api", &["api"], &api_env, &dir);
    let ops = free_port();
    let mut hooks_worker = Worker::start("webhooks", &["webhooks"], &worker_env(&run, ops), &dir);
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        http: reqwest::Client::new(),
    };
    wait_for("the api", Duration::from_secs(60), || {
        let url = format!("{}/readyz", api.base);
        async move { common::get_json(&url).await.map(|_| ()) }
    })
    .await;

    let (e1, e2, probe, other) = (
        format!("wh1{run}"),
        format!("wh2{run}"),
        format!("whp{run}"),
        format!("whx{run}"),
    );
    let (status, partner) = api
        .call(
            reqwest::Method::POST,
            "/api/admin/partners",
            None,
            Some(json!({"name": "hooks", "tier": "partner", "eventIds": [e1, e2, probe]})),
        )
        .await;
    assert_eq!(status, 201, "{partner}");
    let key = partner["apiKey"].as_str().unwrap().to_owned();
    let post = reqwest::Method::POST;

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
                Some(&key),
                Some(json!({"url": url, "eventTypes": ["alert.raised"]})),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
    }
    let (status, body) = api
        .call(
            post.clone(),
            "/api/partner/webhooks",
            Some(&key),
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
            .call(post.clone(), "/api/partner/webhooks", Some(&key), Some(req))
            .await;
        assert_eq!(status, 201, "{body}");
        let secret = body["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        endpoints.insert(name, (body["id"].as_str().unwrap().to_owned(), secret));
    }
    let (_, list) = api
        .call(
            reqwest::Method::GET,
            "/api/partner/webhooks",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 4);
    assert!(
        !list.to_string().contains("whsec_"),
        "a listing shows a secret"
    );

    // Probe until the outbox consumes (it starts at the topics' end).
    let codec = Codec::new(&s.registry).unwrap();
    let producer = common::producer(&s);
    let t0 = chrono::Utc::now().timestamp_millis();
    let mut n = 0;
    wait_for("the first delivery", Duration::from_secs(90), || {
        n += 1;
        let a = alert(&probe, n, AlertAction::Raised, t0 + n);
        let (producer, codec, receivers) = (&producer, &codec, &receivers);
        async move {
            common::send(producer, codec, &a).await;
            (!receivers.got("flaky").is_empty()).then_some(())
        }
    })
    .await;

    // Ten alerts for e1, five for e2, and three for an event the partner was not granted.
    for i in 0..10 {
        common::send(
            &producer,
            &codec,
            &alert(&e1, i, AlertAction::Raised, t0 + 1000 + i),
        )
        .await;
        if i < 5 {
            common::send(
                &producer,
                &codec,
                &alert(&e2, i, AlertAction::Raised, t0 + 1000 + i),
            )
            .await;
        }
        if i < 3 {
            common::send(
                &producer,
                &codec,
                &alert(&other, i, AlertAction::Raised, t0 + i),
            )
            .await;
        }
    }
    wait_for("every e1 and e2 delivery", Duration::from_secs(90), || {
        let got = receivers.got("flaky");
        let (e1, e2) = (e1.clone(), e2.clone());
        async move {
            (delivered(&got, &e1) == (1..=10).collect::<Vec<_>>()
                && delivered(&got, &e2) == (1..=5).collect::<Vec<_>>())
            .then_some(())
        }
    })
    .await;
    let got = receivers.got("flaky");
    assert!(
        !got.iter().any(|r| r.body.contains(&other)),
        "an event the partner was not granted was delivered"
    );
    // Each message: exactly three attempts (500, 503, 200), one success; first attempts in
    // sequence order per event.
    let mut attempts: HashMap<String, Vec<u16>> = HashMap::new();
    let mut first_seen: Vec<(String, i64)> = Vec::new();
    for r in got.iter().filter(|r| !r.body.contains(&probe)) {
        let statuses = attempts.entry(r.id.clone()).or_default();
        if statuses.is_empty() {
            let b = r.json();
            first_seen.push((
                b["data"]["eventId"].as_str().unwrap().to_owned(),
                b["data"]["sequence"].as_i64().unwrap(),
            ));
        }
        statuses.push(r.status);
    }
    assert_eq!(attempts.len(), 15);
    for (id, statuses) in &attempts {
        assert_eq!(statuses, &[500, 503, 200], "{id}");
    }
    for e in [&e1, &e2] {
        let order: Vec<i64> = first_seen
            .iter()
            .filter(|(ev, _)| ev == e)
            .map(|(_, s)| *s)
            .collect();
        assert!(
            order.is_sorted(),
            "first attempts out of order for {e}: {order:?}"
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
    let log = wait_for(
        "the e1 deliveries in the log",
        Duration::from_secs(60),
        || {
            let (api, key, flaky_id, e1) = (&api, &key, &flaky_id, &e1);
            async move {
                let (status, log) = api
                    .call(
                        reqwest::Method::GET,
                        &format!(
                            "/api/partner/webhooks/{flaky_id}/deliveries?state=delivered&limit=1000"
                        ),
                        Some(key),
                        None,
                    )
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
                    .call(
                        reqwest::Method::GET,
                        &format!("/api/partner/webhooks/{id}"),
                        Some(key),
                        None,
                    )
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
            &codec,
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
    let _hooks_worker = Worker::start("webhooks", &["webhooks"], &worker_env(&run, ops), &dir);
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
            Some(&key),
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
            Some(&key),
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
    let file = dir.join("signatures.json");
    std::fs::write(&file, serde_json::to_vec(&checks).unwrap()).unwrap();
    let python = std::env::var("MUSTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/third_party/verify_webhooks.py"
    );
    let out = std::process::Command::new(&python)
        .args([script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a signature:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{} verified", checks.len() - 1))
    );
}

fn check(secret: &str, r: &Received) -> Value {
    json!({
        "secret": secret,
        "id": r.id,
        "timestamp": r.timestamp,
        "signature": r.signature,
        "body": r.body,
        "expect": true,
    })
}

/// An alert whose message holds a NUL (PostgreSQL refuses it in the delivery's jsonb), in the
/// middle of a burst of other events' alerts: every other alert is delivered, the bad one is
/// recorded in `dead_letters` with PostgreSQL's message and published once, the outbox never
/// restarts, and later alerts are delivered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_the_outbox_cannot_store_is_dead_lettered_and_other_events_are_delivered() {
    let s = Services::from_env();
    let run = run_id();
    let dir = scratch_dir(&run);
    let receivers = Receivers::default();
    receivers.add("ok", Behaviour::Always(200));
    let port = receivers.clone().serve().await;

    let api_port = free_port();
    let mut api_env = worker_env(&run, free_port());
    api_env.push(("MUSTER_API_ADDR", format!("127.0.0.1:{api_port}")));
    api_env.push(("MUSTER_ADMIN_TOKEN", ADMIN.into()));
    let _api_worker = Worker::start("api", &["api"], &api_env, &dir);
    let ops = free_port();
    let mut hooks_env = worker_env(&run, ops);
    // One batch for the whole burst.
    hooks_env.retain(|(k, _)| *k != "MUSTER__PROJECTIONS__BATCH_MAX_WAIT");
    hooks_env.push(("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "3s".into()));
    let mut hooks_worker = Worker::start("webhooks", &["webhooks"], &hooks_env, &dir);
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        http: reqwest::Client::new(),
    };
    wait_for("the api", Duration::from_secs(60), || {
        let url = format!("{}/readyz", api.base);
        async move { common::get_json(&url).await.map(|_| ()) }
    })
    .await;

    let (g1, g2, bad, probe) = (
        format!("whg1{run}"),
        format!("whg2{run}"),
        format!("whb{run}"),
        format!("whq{run}"),
    );
    let post = reqwest::Method::POST;
    let (status, partner) = api
        .call(
            post.clone(),
            "/api/admin/partners",
            None,
            Some(json!({"name": "poison", "tier": "partner", "eventIds": [g1, g2, bad, probe]})),
        )
        .await;
    assert_eq!(status, 201, "{partner}");
    let key = partner["apiKey"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            post,
            "/api/partner/webhooks",
            Some(&key),
            Some(json!({"url": format!("http://127.0.0.1:{port}/hook/ok"), "eventTypes": ["alert.raised"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let codec = Codec::new(&s.registry).unwrap();
    let producer = common::producer(&s);
    let t0 = chrono::Utc::now().timestamp_millis();
    let mut n = 0;
    wait_for("the first delivery", Duration::from_secs(90), || {
        n += 1;
        let a = alert(&probe, n, AlertAction::Raised, t0 + n);
        let (producer, codec, receivers) = (&producer, &codec, &receivers);
        async move {
            common::send(producer, codec, &a).await;
            (!receivers.got("ok").is_empty()).then_some(())
        }
    })
    .await;

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
    let bad_at = common::send_burst(&producer, &codec, &burst).await[5];

    wait_for(
        "every good alert delivered",
        Duration::from_secs(90),
        || {
            let got = receivers.got("ok");
            let (g1, g2) = (g1.clone(), g2.clone());
            async move {
                (delivered(&got, &g1) == (1..=5).collect::<Vec<_>>()
                    && delivered(&got, &g2) == (1..=5).collect::<Vec<_>>())
                .then_some(())
            }
        },
    )
    .await;
    assert!(
        !receivers.got("ok").iter().any(|r| r.body.contains(&bad)),
        "the refused alert was delivered"
    );

    let (client, conn) = tokio_postgres::connect(&s.database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = common::published_dead_letters(&client, Alert::TOPIC, bad_at, 1).await;
    let row = &rows[0];
    assert_eq!(row.get::<_, String>(0), "project:webhook_outbox");
    let reason: String = row.get(1);
    assert!(reason.contains("SQLSTATE 22P05"), "{reason}");
    assert_eq!(row.get::<_, Option<String>>(2), Some(bad.clone()));
    let published = common::dead_letters_since(&s, &codec, since, |dl| {
        dl.source_topic == Alert::TOPIC && (dl.source_partition, dl.source_offset) == bad_at
    })
    .await;
    assert_eq!(published.len(), 1, "published once: {published:?}");
    assert_eq!(published[0].error, reason);

    let restarts = common::projection_restarts(ops).await;
    assert!(restarts.is_empty(), "the outbox restarted: {restarts:?}");
    common::send(
        &producer,
        &codec,
        &alert(&g1, 50, AlertAction::Raised, t0 + 3000),
    )
    .await;
    wait_for(
        "an alert after the bad one",
        Duration::from_secs(60),
        || {
            let got = receivers.got("ok");
            let g1 = g1.clone();
            async move { (delivered(&got, &g1) == (1..=6).collect::<Vec<_>>()).then_some(()) }
        },
    )
    .await;
    hooks_worker.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_per_partner_and_replays_are_capped() {
    let s = Services::from_env();
    let run = run_id();
    let dir = scratch_dir(&run);
    let api_port = free_port();
    let mut env = worker_env(&run, free_port());
    env.push(("MUSTER_API_ADDR", format!("127.0.0.1:{api_port}")));
    env.push(("MUSTER_ADMIN_TOKEN", ADMIN.into()));
    env.push(("MUSTER__WEBHOOKS__MAX_ENDPOINTS_PER_PARTNER", "2".into()));
    env.push(("MUSTER__WEBHOOKS__MAX_REPLAY", "3".into()));
    let _api_worker = Worker::start("api", &["api"], &env, &dir);
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        http: reqwest::Client::new(),
    };
    wait_for("the api", Duration::from_secs(60), || {
        let url = format!("{}/readyz", api.base);
        async move { common::get_json(&url).await.map(|_| ()) }
    })
    .await;
    let post = reqwest::Method::POST;
    let (status, partner) = api
        .call(
            post.clone(),
            "/api/admin/partners",
            None,
            Some(json!({"name": "capped", "tier": "partner", "eventIds": [format!("cap{run}")]})),
        )
        .await;
    assert_eq!(status, 201, "{partner}");
    let key = partner["apiKey"].as_str().unwrap().to_owned();
    let create = |n: usize| {
        api.call(
            post.clone(),
            "/api/partner/webhooks",
            Some(&key),
            Some(json!({"url": format!("http://127.0.0.1:9/hook/{n}"), "eventTypes": ["alert.raised"]})),
        )
    };
    let (status, first) = create(1).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(create(2).await.0, 201);
    let (status, body) = create(3).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2 webhooks"),
        "{body}"
    );

    // Five deliveries in the log, one minute apart.
    let endpoint = first["id"].as_str().unwrap().to_owned();
    let (db, conn) = tokio_postgres::connect(&s.database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
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
            Some(&key),
            Some(json!({"from": from, "to": to})),
        )
    };
    let (status, body) = replay("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("more than 3 deliveries"),
        "{body}"
    );
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
