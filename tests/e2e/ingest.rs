//! Ingest end to end, against real Kafka, registry and PostgreSQL: registration, scheduled
//! collection across restarts, each auth type, retries and health, pushed check-ins, and two
//! ingest processes sharing services.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::api::{Auth, detail};
use common::stack::{Stack, gaps, polled_twice};
use common::wait_for;
use muster_schemas::{Codec, RawCheckin, ServiceHealth, TopicRecord};
use rdkafka::message::Message;
use reqwest::Method;
use serde_json::{Value, json};

/// Reads `topic` until `done` says so, returning the records of `event_id`.
async fn read_until<R: TopicRecord>(
    stack: &Stack,
    event_id: &str,
    timeout: Duration,
    done: impl Fn(&[(R, Vec<u8>)]) -> bool,
) -> Vec<(R, Vec<u8>)> {
    let codec = Codec::new(&stack.services.registry).unwrap();
    let consumer = common::kafka::consumer_at(
        &stack.services,
        &common::topic::<R>(),
        0,
        "read_uncommitted",
    );
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {}",
            &common::topic::<R>()
        );
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await
        else {
            continue;
        };
        if msg.key() != Some(event_id.as_bytes()) {
            continue;
        }
        let bytes = msg.payload().unwrap().to_vec();
        out.push((codec.decode::<R>(&bytes).await.unwrap(), bytes));
    }
    out
}

/// A delivery of check-ins pushed to `event`'s endpoint, signed if `signature` is given.
async fn deliver(
    stack: &Stack,
    event: &str,
    msg_id: &str,
    ts: i64,
    signature: Option<String>,
    body: Vec<u8>,
) -> reqwest::Response {
    let path = format!("/api/ingest/{event}/checkins");
    let mut r = stack
        .api
        .request(Method::POST, &path, Auth::None)
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", ts.to_string())
        .body(body);
    if let Some(s) = signature {
        r = r.header("webhook-signature", s);
    }
    r.send().await.unwrap()
}

/// Registers `body`, which must be refused with `status` and a detail that says `says`;
/// returns the problem.
async fn refused(stack: &Stack, body: &Value, status: u16, says: &str) -> Value {
    let (got, problem) = stack.register(body).await;
    assert_eq!(got, status, "{problem}");
    assert!(detail(&problem).contains(says), "{problem}");
    problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_validated_and_refused_for_unhealthy_or_unreachable_services() {
    let stack = Stack::start(&["--events", "2", "--unhealthy", "1"]).await;

    let nothing_saved = |n: usize| {
        let stack = &stack;
        async move {
            assert_eq!(
                stack.admin_get(&stack.event(n)).await.0,
                404,
                "nothing saved"
            )
        }
    };
    let body = refused(&stack, &stack.registration(2).await, 422, "503").await;
    assert_eq!(
        body["type"],
        "https://muster.dev/problems/service-unhealthy"
    );
    nothing_saved(2).await;

    let mut unreachable = stack.registration(1).await;
    let closed = common::free_port();
    unreachable["endpoints"]["api"] = json!(format!("http://127.0.0.1:{closed}/x"));
    unreachable["endpoints"]["healthCheck"] = json!(format!("http://127.0.0.1:{closed}/x/health"));
    refused(&stack, &unreachable, 422, "connection refused").await;
    nothing_saved(1).await;

    let mut invalid = stack.registration(1).await;
    invalid["syncSettings"]["interval"] = json!(0);
    refused(&stack, &invalid, 422, "syncSettings.interval").await;
    refused(&stack, &json!({"eventId": "x"}), 400, "serviceName").await;

    let anonymous = stack
        .api
        .request(Method::GET, "/api/admin/services", Auth::None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_service_is_synced_at_its_interval_and_survives_an_ingest_restart() {
    let stack = Stack::start(&["--events", "1", "--interval", "1"]).await;
    let id = stack.event(1);
    let (status, body) = stack.register(&stack.registration(1).await).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["webhookSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(body["initialSync"]["ok"], true, "{body}");
    assert_eq!(
        stack.stats(&id).await["realtime"].as_array().unwrap().len(),
        1,
        "initial sync"
    );

    let [ingest] = stack.start_ingest(["ingest-1"]).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = stack.stats(&id).await["realtime"].as_array().unwrap().len();
    assert!(
        (5..=9).contains(&before),
        "{before} collections in ~6 s at a 1 s interval"
    );
    assert!(ingest.terminate(Duration::from_secs(20)).success());

    let [_second] = stack.start_ingest(["ingest-2"]).await;
    wait_for(
        "collections after the restart",
        Duration::from_secs(20),
        || {
            let stack = &stack;
            let id = id.clone();
            async move {
                let n = stack.stats(&id).await["realtime"].as_array().unwrap().len();
                (n >= before + 3).then_some(())
            }
        },
    )
    .await;
    let stats = stack.stats(&id).await;
    let g = gaps(&stats["realtime"]);
    assert!(
        !polled_twice(&g, 1.0),
        "collections closer than the interval: {g:?}"
    );

    // The status is the ingest process's to write, after the collections the simulator saw.
    let view = wait_for("the service's status", Duration::from_secs(30), || {
        let (stack, id) = (&stack, id.clone());
        async move {
            let (_, view) = stack.admin_get(&id).await;
            let status = &view["status"];
            (status["health"] == "healthy" && status["lastSuccessAt"].is_string()).then_some(view)
        }
    })
    .await;
    assert_eq!(view["status"]["health"], "healthy", "{view}");
    assert!(view["status"]["lastSuccessAt"].is_string(), "{view}");
    assert!(
        view["status"]["lagSeconds"].as_f64().unwrap() < 5.0,
        "{view}"
    );
    assert!(
        view.get("authentication").is_none(),
        "credentials never listed: {view}"
    );

    let (status, body) = stack.register(&stack.registration(1).await).await;
    assert_eq!(status, 200, "re-registering updates in place: {body}");
    assert!(
        body["webhookSecret"].is_null(),
        "the secret is shown once: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_auth_type_reaches_the_service_with_the_right_header() {
    let stack = Stack::start(&["--events", "4", "--auth", "mixed", "--interval", "1"]).await;
    let mut kinds = Vec::new();
    for n in 1..=4 {
        let body = stack.registration(n).await;
        kinds.push(
            body["authentication"]["type"]
                .as_str()
                .unwrap_or("none")
                .to_owned(),
        );
        let (status, answer) = stack.register(&body).await;
        assert_eq!(status, 201, "{}: {answer}", kinds[n - 1]);
        assert_eq!(
            answer["service"]["authenticationType"],
            kinds[n - 1].as_str()
        );
    }
    assert_eq!(kinds, ["none", "api_key", "jwt", "oauth2"]);

    let mut wrong = stack.registration(2).await;
    wrong["authentication"]["credentials"]["key"] = json!("not-the-key");
    // Wrong credentials fail the health check.
    refused(&stack, &wrong, 422, "401").await;

    let [_ingest] = stack.start_ingest(["ingest"]).await;
    for n in 1..=4 {
        let id = stack.event(n);
        wait_for(
            &format!("collections of {}", kinds[n - 1]),
            Duration::from_secs(20),
            || {
                let (stack, id) = (&stack, id.clone());
                async move {
                    let s = stack.stats(&id).await;
                    (s["realtime"].as_array().unwrap().len() >= 3).then_some(())
                }
            },
        )
        .await;
    }
    let unauthorized: u64 = {
        let mut total = 0;
        for n in [1, 3, 4] {
            total += stack.stats(&stack.event(n)).await["unauthorized"]
                .as_u64()
                .unwrap();
        }
        total
    };
    assert_eq!(
        unauthorized, 0,
        "every request of the right services carried the right header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_service_is_retried_per_policy_then_reported_down() {
    let stack = Stack::start(&["--events", "1", "--interval", "1"]).await;
    let id = stack.event(1);
    let mut body = stack.registration(1).await;
    body["syncSettings"]["retryPolicy"] =
        json!({"maxAttempts": 3, "initialBackoffMs": 50, "maxBackoffMs": 100});
    assert_eq!(stack.register(&body).await.0, 201);
    let [_ingest] = stack.start_ingest(["ingest"]).await;
    wait_for("healthy", Duration::from_secs(20), || {
        let (stack, id) = (&stack, id.clone());
        async move { (stack.admin_get(&id).await.1["status"]["health"] == "healthy").then_some(()) }
    })
    .await;

    stack.set_mode(&id, "failing").await;
    let records = read_until::<ServiceHealth>(&stack, &id, Duration::from_secs(60), |rs| {
        rs.iter().any(|(r, _)| r.current.as_str() == "down")
    })
    .await;
    let path: Vec<&str> = records.iter().map(|(r, _)| r.current.as_str()).collect();
    assert_eq!(path, ["healthy", "degraded", "down"], "{records:?}");
    let down = &records[2].0;
    assert!(down.consecutive_failures >= 3);
    assert!(down.reason.contains("HTTP 500"), "{}", down.reason);
    let failed = stack.stats(&id).await["failed"].as_u64().unwrap();
    assert!(
        failed >= 9,
        "3 collections of 3 attempts each before down, saw {failed} requests"
    );

    stack.set_mode(&id, "healthy").await;
    let records =
        read_until::<ServiceHealth>(&stack, &id, Duration::from_secs(30), |rs| rs.len() >= 4).await;
    assert_eq!(records[3].0.current.as_str(), "healthy");
    assert_eq!(records[3].0.previous.map(|h| h.as_str()), Some("down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_checkins_are_verified_and_arrive_pseudonymized() {
    let stack = Stack::start(&["--events", "1"]).await;
    let id = stack.event(1);
    let (_, body) = stack.register(&stack.registration(1).await).await;
    let secret = body["webhookSecret"].as_str().unwrap().to_owned();
    let raw_ids: Vec<String> = (0..3).map(|i| format!("alice-{}-{i}", stack.run)).collect();
    let batch =
        json!(raw_ids.iter().enumerate().map(|(i, p)| json!({
        "gateId": "G1", "participantId": p, "direction": if i == 2 { "out" } else { "in" },
        "scannedAt": "2026-11-24T10:00:00+09:00"
    })).collect::<Vec<_>>());
    let body = serde_json::to_vec(&batch).unwrap();
    let now = chrono::Utc::now().timestamp();
    let send = |msg_id: &str, ts: i64, sig: Option<String>, body: Vec<u8>| {
        let (stack, id, msg_id) = (&stack, &id, msg_id.to_owned());
        async move { deliver(stack, id, &msg_id, ts, sig, body).await }
    };
    let sign = |msg_id: &str, ts: i64, body: &[u8]| {
        muster_runtime::signature::sign(&secret, msg_id, ts, body).unwrap()
    };

    let r = send("msg_a", now, None, body.clone()).await;
    assert_eq!(r.status(), 401, "unsigned");
    let forged = muster_runtime::signature::sign(
        &muster_runtime::signature::generate_secret(),
        "msg_a",
        now,
        &body,
    )
    .unwrap();
    assert_eq!(
        send("msg_a", now, Some(forged), body.clone())
            .await
            .status(),
        401,
        "wrong secret"
    );
    let tampered = sign("msg_a", now, b"[]");
    assert_eq!(
        send("msg_a", now, Some(tampered), body.clone())
            .await
            .status(),
        401,
        "tampered body"
    );
    let stale = sign("msg_a", now - 3600, &body);
    assert_eq!(
        send("msg_a", now - 3600, Some(stale), body.clone())
            .await
            .status(),
        401,
        "replayed later"
    );

    let good = send("msg_a", now, Some(sign("msg_a", now, &body)), body.clone()).await;
    assert_eq!(good.status(), 202);
    assert_eq!(good.json::<Value>().await.unwrap()["accepted"], 3);
    let again = send("msg_a", now, Some(sign("msg_a", now, &body)), body.clone()).await;
    assert_eq!(again.status(), 409, "a delivery is accepted once");

    let invalid = br#"[{"gateId":"G1","participantId":"x","direction":"sideways","scannedAt":"2026-11-24T10:00:00Z"}]"#.to_vec();
    let r = send("msg_b", now, Some(sign("msg_b", now, &invalid)), invalid).await;
    assert_eq!(r.status(), 422);

    let records =
        read_until::<RawCheckin>(&stack, &id, Duration::from_secs(30), |rs| rs.len() >= 3).await;
    assert_eq!(records.len(), 3);
    let secrets = muster_runtime::secrets::Secrets::from_config(None).unwrap();
    for ((record, bytes), raw) in records.iter().zip(&raw_ids) {
        assert_eq!(record.participant, secrets.pseudonymize(raw));
        assert_eq!(record.delivery_id, "msg_a");
        let haystack = String::from_utf8_lossy(bytes);
        assert!(
            !haystack.contains(raw.as_str()),
            "the raw id never enters Kafka"
        );
    }
    assert_eq!(records[2].0.direction.as_str(), "out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_processes_never_poll_the_same_service_in_one_interval() {
    let stack = Stack::start(&["--events", "6", "--interval", "2"]).await;
    for n in 1..=6 {
        assert_eq!(stack.register(&stack.registration(n).await).await.0, 201);
    }
    let [_a, b] = stack.start_ingest(["ingest-a", "ingest-b"]).await;
    let ours = |services: &Value| -> Vec<Value> {
        services["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["eventId"].as_str().unwrap().starts_with(&stack.prefix))
            .cloned()
            .collect()
    };
    let owners = wait_for(
        "both processes holding leases",
        Duration::from_secs(30),
        || {
            let stack = &stack;
            async move {
                let (status, all) = stack
                    .api
                    .admin(Method::GET, "/api/admin/services", None)
                    .await;
                (status == 200).then_some(())?;
                let owners: HashSet<String> = ours(&all)
                    .iter()
                    .filter_map(|s| s["status"]["polledBy"].as_str().map(str::to_owned))
                    .collect();
                (owners.len() == 2).then_some(owners)
            }
        },
    )
    .await;
    assert_eq!(owners.len(), 2);
    tokio::time::sleep(Duration::from_secs(8)).await;

    // One process dies without releasing; the other takes its services over after the lease.
    let killed_at = chrono::Utc::now().timestamp_millis();
    drop(b);
    tokio::time::sleep(Duration::from_secs(12)).await;
    // The takeover waits out the dead process's lease: on a loaded machine the first poll after
    // it may come later than the twelve seconds above.
    let polled_again = |stats: &Value| {
        stats["realtime"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t.as_i64().unwrap() > killed_at + 8000)
            .count()
    };
    let all_stats = wait_for(
        "every service polled after its owner died",
        Duration::from_secs(60),
        || {
            let stack = &stack;
            async move {
                let mut all = Vec::new();
                for n in 1..=6 {
                    let stats = stack.stats(&stack.event(n)).await;
                    (polled_again(&stats) >= 1).then_some(())?;
                    all.push(stats);
                }
                Some(all)
            }
        },
    )
    .await;
    for (n, stats) in (1..=6).zip(all_stats) {
        let id = stack.event(n);
        // A retry of a failed attempt (a timeout on a loaded machine) is the same collection.
        let g = gaps(&stats["collections"]);
        assert!(
            !polled_twice(&g, 2.0),
            "{id}: polled twice in one 2 s interval: {g:?}"
        );
        let after = polled_again(&stats);
        assert!(after >= 1, "{id} is polled again after its owner died");
    }
}

/// A hostile upstream on 127.0.0.1: `/huge/...` streams an endless body, `/redirect/...`
/// redirects to the same server under the name `localhost` (another host), `.../health` is
/// healthy. Returns its base URL and the requests that reached `/elsewhere` (none may).
async fn hostile_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let elsewhere = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = elsewhere.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = vec![0; 8192];
                let n = conn.read(&mut head).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&head[..n]).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or_default().to_owned();
                let ok = |body: &str| {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                if path.starts_with("/elsewhere") {
                    seen.lock().unwrap().push(head);
                    let _ = conn.write_all(ok("{}").as_bytes()).await;
                } else if path.ends_with("/health") {
                    let _ = conn
                        .write_all(ok(r#"{"status":"healthy"}"#).as_bytes())
                        .await;
                } else if path.starts_with("/redirect") {
                    let to = format!("http://localhost:{port}/elsewhere{path}");
                    let answer = format!(
                        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                } else {
                    // No length: the body ends when the connection does, i.e. never on our side.
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n[")
                        .await;
                    let chunk = vec![b' '; 64 << 10];
                    for _ in 0..(1 << 14) {
                        if conn.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), elsewhere)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_redirected_answers_fail_collections_without_leaking_credentials() {
    let stack = Stack::start(&["--events", "2"]).await;
    let (upstream, elsewhere) = hostile_upstream().await;
    let limit = muster_ingest::IngestConfig::default().max_body_bytes;

    // Registration: a health check with an endless body is refused, not read to the end.
    let mut endless_check = stack.registration(1).await;
    endless_check["endpoints"]["api"] = json!(format!("{upstream}/huge"));
    endless_check["endpoints"]["healthCheck"] = json!(format!("{upstream}/huge/status"));
    refused(
        &stack,
        &endless_check,
        422,
        &format!("larger than {limit} bytes"),
    )
    .await;
    // Had it read on, the request timeout would have ended it with another reason.

    // A healthy service whose snapshots are endless: registered, its initial sync failed.
    let huge_id = stack.event(1);
    let mut huge = stack.registration(1).await;
    huge["endpoints"]["api"] = json!(format!(
        "{}/huge",
        upstream.replace("://", "://reader:s3cret@")
    ));
    huge["endpoints"]["healthCheck"] = json!(format!("{upstream}/huge/health?key=s3cret"));
    let (status, body) = stack.register(&huge).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["initialSync"]["ok"], false, "{body}");
    let error = body["initialSync"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("larger than {limit} bytes")),
        "{body}"
    );
    assert!(!error.contains("s3cret"), "{error}");

    // A service that redirects to another host: the redirect is not followed, so its API key
    // never reaches the other host.
    let redirect_id = stack.event(2);
    let mut redirect = stack.registration(2).await;
    redirect["endpoints"]["api"] = json!(format!("{upstream}/redirect"));
    redirect["endpoints"]["healthCheck"] = json!(format!("{upstream}/redirect/health"));
    redirect["authentication"] =
        json!({"type": "api_key", "credentials": {"key": format!("key-{}", stack.run)}});
    let (status, body) = stack.register(&redirect).await;
    assert_eq!(status, 201, "{body}");
    let error = body["initialSync"]["error"].as_str().unwrap();
    assert!(error.contains("redirect (HTTP 302)"), "{body}");

    // Scheduled collections fail the same way, and the health topic says why, without secrets.
    let [_ingest] = stack.start_ingest(["ingest"]).await;
    for (id, why) in [
        (&huge_id, format!("larger than {limit} bytes")),
        (&redirect_id, "redirect (HTTP 302)".to_owned()),
    ] {
        let records = read_until::<ServiceHealth>(&stack, id, Duration::from_secs(60), |rs| {
            rs.iter().any(|(r, _)| r.current.as_str() != "healthy")
        })
        .await;
        let failed = records
            .iter()
            .find(|(r, _)| r.current.as_str() != "healthy")
            .unwrap();
        assert!(failed.0.reason.contains(&why), "{:?}", failed.0);
        assert!(!failed.0.reason.contains("s3cret"), "{:?}", failed.0);
        // The health record and the status row are written separately: wait for the row.
        let status = wait_for("the service's last error", Duration::from_secs(30), || {
            let (stack, why) = (&stack, why.clone());
            async move {
                let status = stack.admin_get(id).await.1["status"].clone();
                let last_error = status["lastError"].as_str().unwrap_or_default();
                last_error.contains(&why).then_some(status)
            }
        })
        .await;
        let last_error = status["lastError"].as_str().unwrap_or_default();
        assert!(last_error.contains(&why), "{status}");
        assert!(!last_error.contains("s3cret"), "{status}");
    }
    assert!(
        elsewhere.lock().unwrap().is_empty(),
        "a redirect was followed: {:?}",
        elsewhere.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkin_with_a_nul_is_refused_naming_the_field_and_other_events_still_accepted() {
    let stack = Stack::start(&["--events", "2"]).await;
    let mut secrets = Vec::new();
    for n in 1..=2 {
        let (status, body) = stack.register(&stack.registration(n).await).await;
        assert_eq!(status, 201, "{body}");
        secrets.push(body["webhookSecret"].as_str().unwrap().to_owned());
    }
    let push = |n: usize, msg_id: &str, gate: &str| {
        let body = serde_json::to_vec(&json!([
            {"gateId": "G1", "participantId": "p1", "direction": "in", "scannedAt": "2026-11-24T10:00:00Z"},
            {"gateId": gate, "participantId": "p2", "direction": "in", "scannedAt": "2026-11-24T10:00:01Z"},
        ]))
        .unwrap();
        let now = chrono::Utc::now().timestamp();
        let sig = muster_runtime::signature::sign(&secrets[n - 1], msg_id, now, &body).unwrap();
        let (stack, msg_id) = (&stack, msg_id.to_owned());
        async move { deliver(stack, &stack.event(n), &msg_id, now, Some(sig), body).await }
    };

    let refused = push(1, "msg_nul", "G\u{0}2").await;
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert!(detail(&problem).contains("[1]: gateId"), "{problem}");
    let accepted = push(2, "msg_ok", "G2").await;
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.json::<Value>().await.unwrap()["accepted"], 2);

    let records =
        read_until::<RawCheckin>(&stack, &stack.event(2), Duration::from_secs(30), |rs| {
            rs.len() >= 2
        })
        .await;
    assert_eq!(records[1].0.gate_id, "G2");
    // Check-ins are personal data: their topic expires them (90 days by default).
    assert_eq!(
        common::kafka::topic_config(
            &stack.services,
            &common::topic::<RawCheckin>(),
            "retention.ms"
        )
        .await
        .as_deref(),
        Some("7776000000")
    );
    // The refused delivery claimed nothing: once fixed, the same id is accepted.
    assert_eq!(push(1, "msg_nul", "G2").await.status(), 202);
}
