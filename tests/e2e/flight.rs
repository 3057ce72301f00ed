//! The Arrow Flight SQL endpoint of `muster api` as analysts reach it: through the ADBC Flight
//! SQL driver from Python (PyPI: adbc-driver-flightsql, pyarrow), which nobody here wrote. The
//! admin token sees every projection, a premium key only its events, writes and DDL are
//! refused through every path (and nothing changes in PostgreSQL), a runaway query is stopped
//! by the time limit, and unknown callers are turned away.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::api::{ADMIN, Api, start_api};
use common::{Run, Worker, db, free_port};
use serde_json::{Value, json};

/// Runs `steps` with tests/third_party/flight_client.py; one result per step.
fn adbc(uri: &str, token: Option<&str>, steps: Value) -> Vec<Value> {
    let python = std::env::var("MUSTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/third_party/flight_client.py"
    );
    let mut child = Command::new(&python)
        .args([script, uri, token.unwrap_or("-")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python}: {e} (scripts/test.sh installs the driver)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "flight_client.py failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "flight_client.py printed no JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn rows(result: &Value) -> &Vec<Value> {
    result["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("not rows: {result}"))
}

fn refused(result: &Value, says: &str) {
    let error = result["error"]
        .as_str()
        .unwrap_or_else(|| panic!("accepted: {result}"));
    assert!(error.contains(says), "{error:?} does not say {says:?}");
}

/// Three live events (100, 200 and 300 attending), and three minutes of the first.
async fn seed(database: &str, events: &[String; 3]) -> tokio_postgres::Client {
    let client = db::connect(database).await;
    for (n, e) in events.iter().enumerate() {
        db::insert_realtime(&client, e, 100 * (n as i64 + 1)).await;
    }
    db::insert_three_minutes(&client, &events[0]).await;
    client
}

/// `muster api` with its Flight SQL endpoint and `extra` settings; returns the endpoint's URI.
async fn start_flight(run: &Run, extra: &[(&str, &str)]) -> (Worker, Api, String) {
    let grpc = free_port();
    let mut env = vec![("MUSTER__API__FLIGHT__ADDR", format!("127.0.0.1:{grpc}"))];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let (worker, api) = start_api(&run.dir, &env).await;
    (worker, api, format!("grpc://127.0.0.1:{grpc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_query_over_flight_sql_read_only_within_limits() {
    let r = Run::begin();
    let (mut worker, api, uri) = start_flight(
        &r,
        &[
            ("MUSTER__API__FLIGHT__TIMEOUT", "2s"),
            ("MUSTER__API__FLIGHT__PARTNER_TIMEOUT", "2s"),
        ],
    )
    .await;
    let events = [0, 1, 2].map(|n| format!("fl{}{n}", r.id));
    let [a, b, c] = &events;
    let db = seed(&r.services.database, &events).await;
    let premium = api.partner_key("premium", &[a, b]).await;
    let partner = api.partner_key("partner", &[a]).await;

    // (a) The admin token: every projection, with the numbers seeded.
    let r = adbc(
        &uri,
        Some(ADMIN),
        json!([
            {"query": format!(
                "SELECT event_id, sum(samples) AS samples, max(last_attendees) AS peak, \
                 min(bucket) AS first FROM event_series_minute WHERE event_id = '{a}' \
                 GROUP BY event_id")},
            {"query": format!(
                "SELECT event_id, current_attendees FROM event_realtime \
                 WHERE event_id IN ('{a}', '{b}', '{c}') ORDER BY event_id")},
            {"tables": true},
        ]),
    );
    let series = rows(&r[0]);
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0]["event_id"], a.as_str());
    assert_eq!(series[0]["samples"], 6);
    assert_eq!(series[0]["peak"], 130);
    assert!(
        series[0]["first"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-24 09:01:00"),
        "{series:?}"
    );
    assert_eq!(
        rows(&r[1]),
        &vec![
            json!({"event_id": a, "current_attendees": 100}),
            json!({"event_id": b, "current_attendees": 200}),
            json!({"event_id": c, "current_attendees": 300}),
        ]
    );
    let tables = r[2]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r[2]));
    for t in ["event_realtime", "event_series_minute", "alerts"] {
        assert!(tables.contains(&json!(t)), "{t} not listed: {tables:?}");
    }
    assert!(!tables.contains(&json!("api_keys")), "{tables:?}");

    // (b) A premium key: its granted events only, whatever the query asks.
    let r = adbc(
        &uri,
        Some(&premium),
        json!([
            {"query": "SELECT DISTINCT event_id FROM event_realtime ORDER BY event_id"},
            {"query": format!("SELECT count(*) AS n FROM event_realtime WHERE event_id = '{c}'")},
            {"query": "SELECT DISTINCT event_id FROM event_series_minute ORDER BY event_id"},
        ]),
    );
    assert_eq!(
        rows(&r[0]),
        &vec![json!({"event_id": a}), json!({"event_id": b})]
    );
    assert_eq!(rows(&r[1]), &vec![json!({"n": 0})]);
    assert_eq!(rows(&r[2]), &vec![json!({"event_id": a})]);

    // (c) Writes and DDL are refused, through statements and bulk ingestion, for both.
    for token in [ADMIN, premium.as_str()] {
        let r = adbc(
            &uri,
            Some(token),
            json!([
                {"query": "DROP TABLE event_realtime"},
                {"query": format!("DELETE FROM event_realtime WHERE event_id = '{a}'")},
                {"query": "INSERT INTO event_realtime SELECT * FROM event_realtime"},
                {"query": "CREATE TABLE stolen AS SELECT * FROM event_realtime"},
                {"ingest": "event_realtime"},
            ]),
        );
        for result in &r {
            refused(result, "only queries that read are allowed");
        }
    }
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM event_realtime WHERE event_id = ANY($1)",
            &[&events.to_vec()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM event_series_minute WHERE event_id = $1",
            &[a],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    let stolen: Option<String> = db
        .query_one("SELECT to_regclass('stolen')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stolen, None);

    // (d) A runaway query is stopped by the time limit (2 s here), with either token.
    let runaway = "SELECT count(*) FROM range(1000000000) a, range(1000000000) b";
    for token in [ADMIN, premium.as_str()] {
        let started = std::time::Instant::now();
        let r = adbc(&uri, Some(token), json!([{"query": runaway}]));
        refused(&r[0], "stopped by the time limit");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    // (e) No token, an unknown one, a partner-tier key: refused.
    let select = json!([{"query": "SELECT 1 AS one"}]);
    refused(&adbc(&uri, None, select.clone())[0], "Bearer");
    refused(
        &adbc(&uri, Some("mk_0000"), select.clone())[0],
        "neither the admin token nor a live API key",
    );
    refused(&adbc(&uri, Some(&partner), select)[0], "premium API key");

    // Counted by outcome.
    let metrics = common::scrape(&api.base).await;
    for outcome in ["ok", "read_only", "timeout", "unauthenticated"] {
        let line = format!("muster_flight_sql_queries_total{{outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
    worker.assert_running();
}

/// Flight SQL is held to the HTTP API's limits: a premium key's calls count against its tier's
/// rate limit (a burst past it is refused with RESOURCE_EXHAUSTED, the admin's are not), and
/// an answer past the byte cap is refused rather than sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_keeps_the_rate_limit_and_the_answer_cap() {
    let r = Run::begin();
    let (mut worker, api, uri) = start_flight(
        &r,
        &[
            ("MUSTER__API__FLIGHT__PARTNER_MAX_ANSWER_BYTES", "65536"),
            ("MUSTER__API__RATE_LIMITS__PREMIUM_PER_SECOND", "1"),
            ("MUSTER__API__RATE_LIMITS__PREMIUM_BURST", "6"),
        ],
    )
    .await;
    let events = [0, 1, 2].map(|n| format!("fr{}{n}", r.id));
    let db = seed(&r.services.database, &events).await;
    // 20,000 minutes of the first event, 2 MB as Arrow.
    db::insert_minutes_from_2030(&db, &events[0], 20_000).await;
    let premium = api.partner_key("premium", &[&events[0]]).await;

    // Past the 64 KiB answer cap (10,000 rows of every column): refused, not cut.
    let r = adbc(
        &uri,
        Some(&premium),
        json!([{"query": "SELECT * FROM event_series_minute"}]),
    );
    refused(&r[0], "larger than the limit of 65536 bytes");
    assert!(
        r[0]["error"]
            .as_str()
            .unwrap()
            .contains("RESOURCE_EXHAUSTED")
            || r[0]["error"]
                .as_str()
                .unwrap()
                .contains("ResourceExhausted"),
        "{}",
        r[0]
    );
    // Within it, answered.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = adbc(
        &uri,
        Some(&premium),
        json!([{"query": "SELECT count(*) AS n FROM event_series_minute"}]),
    );
    // And the 3 minutes `seed` wrote.
    assert_eq!(rows(&r[0]), &vec![json!({"n": 20003})]);

    // A burst past the premium tier's 6: the rest refused, saying why.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let burst = json!(vec![json!({"query": "SELECT 1 AS one"}); 10]);
    let r = adbc(&uri, Some(&premium), burst.clone());
    let ok = r.iter().filter(|r| r.get("rows").is_some()).count();
    assert!((1..10).contains(&ok), "{r:?}");
    for refusal in r.iter().filter(|r| r.get("rows").is_none()) {
        refused(refusal, "allows a burst of 6");
    }
    // The admin token is not rate limited.
    let r = adbc(&uri, Some(ADMIN), burst);
    assert!(r.iter().all(|r| r.get("rows").is_some()), "{r:?}");
    worker.assert_running();
    db::delete_minutes(&db, &events[0]).await;
}
