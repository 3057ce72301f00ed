//! The API's partner tier against a real `muster api` and PostgreSQL: keys (shown once,
//! rotated, revoked), per-event access (401, 403), isolation between partners, and the rate
//! limit's 429 with its headers. The projections it reads are seeded directly.

mod common;

use std::time::Duration;

use common::{Services, Worker, free_port, run_id, scratch_dir, wait_for};
use serde_json::{Value, json};

const ADMIN: &str = "api-test-admin-token";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn partner(&self, key: Option<&str>, path: &str) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send().await.unwrap()
    }

    async fn status(&self, key: Option<&str>, path: &str) -> u16 {
        self.partner(key, path).await.status().as_u16()
    }

    async fn event_ids(&self, key: &str) -> Vec<String> {
        let body: Value = self
            .partner(Some(key), "/api/partner/events")
            .await
            .json()
            .await
            .unwrap();
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventId"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn seed(s: &Services, events: &[&str]) {
    let (client, conn) = tokio_postgres::connect(&s.database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for e in events {
        client
            .execute(
                "INSERT INTO event_catalogue (event_id, service_name, name, event_type,
                    removed, version_at) VALUES ($1, 'svc', $1, 'festival', false, now())",
                &[e],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO event_realtime (event_id, observed_at, fetched_at,
                    total_registered, current_attendees, checked_in, checked_out,
                    attendance_rate, gate_activity, alerts, status, source_partition,
                    source_offset)
                 VALUES ($1, now(), now(), 1000, 420, 450, 30, 0.42, '[]', '[]', 'live', 0, 0)",
                &[e],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO event_series_minute (event_id, bucket, samples, attendees_sum,
                    attendees_max, attendees_min, registered_max, rate_sum, last_at,
                    last_attendees)
                 VALUES ($1, date_trunc('minute', now()) - interval '2 minutes', 2, 800, 410,
                    390, 1000, 0.8, now() - interval '90 seconds', 410)",
                &[e],
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_see_only_their_events_with_keys_that_rotate_revoke_and_rate_limit() {
    let s = Services::from_env();
    let run = run_id();
    let dir = scratch_dir(&run);
    let port = free_port();
    let env = vec![
        ("MUSTER_API_ADDR", format!("127.0.0.1:{port}")),
        ("MUSTER_ADMIN_TOKEN", ADMIN.to_owned()),
        ("MUSTER__OPS__ADDR", format!("127.0.0.1:{}", free_port())),
        (
            "MUSTER__API__RATE_LIMITS__PARTNER_PER_SECOND",
            "1".to_owned(),
        ),
        ("MUSTER__API__RATE_LIMITS__PARTNER_BURST", "30".to_owned()),
    ];
    let _api = Worker::start("api", &["api"], &env, &dir);
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    wait_for("the api", Duration::from_secs(60), || {
        let url = format!("{}/readyz", api.base);
        async move { common::get_json(&url).await.map(|_| ()) }
    })
    .await;
    let (a1, a2, b1) = (format!("pa{run}"), format!("pa2{run}"), format!("pb{run}"));
    seed(&s, &[&a1, &a2, &b1]).await;

    // The admin creates two partners; each key is shown once.
    let (status, a) = api
        .admin(
            reqwest::Method::POST,
            "/api/admin/partners",
            Some(json!({"name": "A", "tier": "partner", "eventIds": [a1, a2]})),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    let (status, b) = api
        .admin(
            reqwest::Method::POST,
            "/api/admin/partners",
            Some(json!({"name": "B", "tier": "premium", "eventIds": [b1]})),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let key_a = a["apiKey"].as_str().unwrap().to_owned();
    let key_b = b["apiKey"].as_str().unwrap().to_owned();
    // Without the admin token, or with a bad body, nothing is created.
    let res = api
        .http
        .post(format!("{}/api/admin/partners", api.base))
        .json(&json!({"name": "C", "tier": "partner", "eventIds": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let (status, body) = api
        .admin(
            reqwest::Method::POST,
            "/api/admin/partners",
            Some(json!({"name": "C", "tier": "gold", "eventIds": []})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // 401 without a key or with an unknown one, as problem+json.
    assert_eq!(api.status(None, "/api/partner/events").await, 401);
    let res = api.partner(Some("mk_nope"), "/api/partner/events").await;
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );

    // Isolation: each partner sees exactly its events, and 403 on the other's.
    let mut seen = api.event_ids(&key_a).await;
    seen.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(api.event_ids(&key_b).await, vec![b1.clone()]);
    let path = |e: &str| format!("/api/partner/events/{e}/attendance");
    assert_eq!(api.status(Some(&key_a), &path(&b1)).await, 403);
    assert_eq!(api.status(Some(&key_b), &path(&a1)).await, 403);
    let body: Value = api
        .partner(Some(&key_a), &path(&a1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["realtime"]["currentAttendees"], 420);
    assert_eq!(body["series"][0]["attendeesMax"], 410);
    assert_eq!(body["series"][0]["attendanceRateAvg"], 0.4);

    // Rotation: the new key works, the old one stops (no grace asked).
    let partner_a = a["partnerId"].as_str().unwrap();
    let (status, rotated) = api
        .admin(
            reqwest::Method::POST,
            &format!("/api/admin/partners/{partner_a}/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_a = rotated["apiKey"].as_str().unwrap().to_owned();
    assert_ne!(new_a, key_a);
    assert_eq!(api.status(Some(&key_a), "/api/partner/events").await, 401);
    assert_eq!(api.status(Some(&new_a), "/api/partner/events").await, 200);

    // Revocation: B's key stops.
    let partner_b = b["partnerId"].as_str().unwrap();
    let (status, _) = api
        .admin(
            reqwest::Method::DELETE,
            &format!("/api/admin/partners/{partner_b}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.status(Some(&key_b), "/api/partner/events").await, 401);

    // A burst over the partner tier's limit (30, refilling 1/s) gets 429 with its headers.
    let mut limited = None;
    for _ in 0..60 {
        let res = api.partner(Some(&new_a), "/api/partner/events").await;
        if res.status().as_u16() == 429 {
            limited = Some(res);
            break;
        }
        assert_eq!(res.status().as_u16(), 200);
    }
    let res = limited.expect("a burst of 60 requests was never limited");
    let h = res.headers();
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(h["ratelimit-limit"], "30");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert!(h.contains_key("ratelimit-reset"));
    assert!(h.contains_key("x-request-id"));
}
