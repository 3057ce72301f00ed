//! The walking skeleton end to end, against real Kafka, registry and PostgreSQL:
//! simulator → ingest → Kafka (Avro) → process → Kafka → project → PostgreSQL → api.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Run, Services, Worker, db, free_port, get_json, wait_for, worker_env};
use muster_schemas::{Codec, DeadLetter};
use rdkafka::message::Message;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_services_reach_the_api_and_bad_bodies_reach_the_dead_letter_topic() {
    let (services, run, dir, codec) = Run::begin().parts();
    let since = chrono::Utc::now().timestamp_millis() - 1000;
    forget_abandoned_runs(&services.database).await;
    let prefix = format!("e2e{run}-");
    let sim_port = free_port();
    let sim_config = dir.join("sim.toml");
    let sim = Worker::start(
        "simulate",
        &[
            "simulate",
            "--events",
            "3",
            "--malformed",
            "1",
            "--interval",
            "1",
            "--cycle",
            "5m",
            "--prefix",
            &prefix,
            "--addr",
            &format!("127.0.0.1:{sim_port}"),
            "--write-config",
            sim_config.to_str().unwrap(),
        ],
        &[],
        &dir,
    );
    let cfg_path = sim_config.clone();
    wait_for("the simulator's config", Duration::from_secs(20), || {
        let p = cfg_path.clone();
        async move { p.exists().then_some(()) }
    })
    .await;

    let group = format!("e2e{run}");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let env = |ops: u16| -> Vec<(&str, String)> {
        let mut env = worker_env(&group, ops);
        env.push(("MUSTER_API_ADDR", format!("127.0.0.1:{}", ports[3])));
        env
    };
    let config = sim_config.to_str().unwrap();
    let mut workers = vec![
        Worker::start(
            "ingest",
            &["--config", config, "ingest"],
            &env(ports[0]),
            &dir,
        ),
        Worker::start("process", &["process"], &env(ports[1]), &dir),
        Worker::start("project", &["project"], &env(ports[2]), &dir),
        Worker::start("api", &["api"], &env(ports[3]), &dir),
    ];
    let api = format!("http://127.0.0.1:{}", ports[3]);
    let good: Vec<String> = (1..=2).map(|i| format!("{prefix}{i}")).collect();
    let bad = format!("{prefix}3");

    // Every good event shows live numbers through the API.
    let events = wait_for(
        "live numbers for the simulated events",
        Duration::from_secs(120),
        || {
            for w in workers.iter_mut() {
                w.assert_running();
            }
            let (api, good) = (api.clone(), good.clone());
            async move {
                let body = get_json(&format!("{api}/api/public/events")).await?;
                let ours: Vec<Value> = body["events"]
                    .as_array()?
                    .iter()
                    .filter(|e| {
                        good.contains(&e["eventId"].as_str().unwrap_or_default().to_owned())
                    })
                    .cloned()
                    .collect();
                (ours.len() == good.len() && ours.iter().all(|e| e["currentAttendees"].is_i64()))
                    .then_some(ours)
            }
        },
    )
    .await;

    // The numbers are exactly what the simulator served at the snapshot's time.
    for e in &events {
        let id = e["eventId"].as_str().unwrap();
        let served = get_json(&format!("http://127.0.0.1:{sim_port}/events/{id}/served"))
            .await
            .expect("simulator history");
        let observed =
            chrono::DateTime::parse_from_rfc3339(e["observedAt"].as_str().unwrap()).unwrap();
        let snapshot = served
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                chrono::DateTime::parse_from_rfc3339(s["timestamp"].as_str().unwrap()).unwrap()
                    == observed
            })
            .unwrap_or_else(|| panic!("{id}: no served snapshot at {observed}"));
        assert_eq!(
            e["currentAttendees"], snapshot["attendance"]["current"],
            "{id}"
        );
        assert_eq!(
            e["totalRegistered"], snapshot["participants"]["total"],
            "{id}"
        );
        let rate = snapshot["attendance"]["current"].as_f64().unwrap()
            / snapshot["participants"]["total"].as_f64().unwrap();
        assert!(
            (e["attendanceRate"].as_f64().unwrap() - rate).abs() < 1e-9,
            "{id}"
        );
        assert_eq!(
            e["type"],
            if id.ends_with('1') {
                "conference"
            } else {
                "festival"
            }
        );
        assert!(
            ["live", "idle", "degraded"].contains(&e["status"].as_str().unwrap()),
            "{e}"
        );
    }

    // Bad bodies are dead-lettered with the reason, both kinds of them.
    let consumer = common::kafka::reader(&services, &common::topic::<DeadLetter>(), since);
    let mut reasons = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while reasons.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters seen: {reasons:?}"
        );
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        else {
            continue;
        };
        let dl: DeadLetter = codec.decode(msg.payload().unwrap()).await.unwrap();
        if dl.event_id.as_deref() != Some(bad.as_str()) {
            continue;
        }
        assert_eq!(dl.stage, "normalize");
        assert_eq!(
            dl.source_topic,
            common::topic::<muster_schemas::RawSnapshot>()
        );
        let payload = String::from_utf8(dl.payload.clone()).unwrap();
        if payload.contains("upstream exploded") {
            assert!(dl.error.contains("s-attend/v1"), "{}", dl.error);
            reasons.insert("not json");
        } else if payload.contains("\"lots\"") {
            assert!(dl.error.contains("invalid type"), "{}", dl.error);
            reasons.insert("wrong types");
        }
    }

    // ...and the pipeline keeps going: the good events' numbers move on.
    let first = events[0]["observedAt"].as_str().unwrap().to_owned();
    let first_id = events[0]["eventId"].as_str().unwrap().to_owned();
    wait_for(
        "a newer snapshot after the dead letters",
        Duration::from_secs(60),
        || {
            let (api, first, first_id) = (api.clone(), first.clone(), first_id.clone());
            async move {
                let body = get_json(&format!("{api}/api/public/events")).await?;
                let e = body["events"]
                    .as_array()?
                    .iter()
                    .find(|e| e["eventId"] == first_id.as_str())?
                    .clone();
                (e["observedAt"].as_str()? > first.as_str()).then_some(())
            }
        },
    )
    .await;

    // Every worker serves health and Prometheus metrics.
    let metric = [
        "muster_ingest_snapshots_total",
        "muster_processor_records_in_total",
        "muster_projection_records_total",
        "muster_api_requests_total",
    ];
    for (port, name) in ports.iter().zip(metric) {
        let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "healthz on {port}");
        assert!(health.headers().contains_key("x-request-id") || *port != ports[3]);
        let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .unwrap();
        assert_eq!(
            ready.status(),
            200,
            "readyz on {port}: {}",
            ready.text().await.unwrap()
        );
        let text = common::scrape(&format!("http://127.0.0.1:{port}")).await;
        assert!(
            text.contains(name),
            "{name} missing from metrics on {port}:\n{text}"
        );
    }

    // Unknown routes answer problem+json with a request id.
    let missing = reqwest::get(format!("{api}/api/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    assert!(missing.headers().contains_key("x-request-id"));

    // SIGTERM stops every worker cleanly.
    for w in workers.drain(..).chain(std::iter::once(sim)) {
        let name = w.name.clone();
        let log = w.log.clone();
        let status = w.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "muster {name} exited with {status}: see {}",
            log.display()
        );
    }

    db::forget_services(&services.database, &prefix).await;
}

/// Forgets services that earlier, failed runs left behind (their simulators are gone).
async fn forget_abandoned_runs(database: &str) {
    let client = db::connect(database).await;
    // The table exists once any worker has migrated; before that there is nothing to forget.
    let _ = client
        .execute(
            "DELETE FROM services WHERE event_id LIKE 'e2e%' AND registered_at < now() - interval '10 minutes'",
            &[],
        )
        .await;
}

/// Workers register their schemas and the BACKWARD rule at the same moment on a fresh start;
/// the registry answers all but the first "rule already exists" (409). Every one must succeed
/// with the same schema id, and registering again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_schema_registration_on_a_fresh_subject_is_idempotent() {
    let services = Services::from_env();
    let topic: &'static str =
        Box::leak(format!("muster-test.race-{}.v1", common::run_id()).into_boxed_str());
    let schema = r#"{"type":"record","name":"Race","namespace":"muster.test","fields":[{"name":"n","type":"long"}]}"#;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let codec = Codec::new(&services.registry).unwrap();
        tasks.spawn(async move { codec.register_schema(topic, schema).await });
    }
    let mut ids = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        ids.insert(done.unwrap().expect("a concurrent registration failed"));
    }
    assert_eq!(ids.len(), 1, "one schema, one id: {ids:?}");
    let again = Codec::new(&services.registry)
        .unwrap()
        .register_schema(topic, schema)
        .await
        .unwrap();
    assert!(ids.contains(&again));
    let config: Value = reqwest::get(format!(
        "{}/config/{topic}-value?defaultToGlobal=false",
        services.registry
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(config["compatibilityLevel"], "BACKWARD", "{config}");
}
