//! Processors end to end against the real broker and registry: exactly-once across a kill -9,
//! late data to the dead-letter topic, windowed partial aggregates, and an incompatible output
//! schema refused before anything is written.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::{delivered, metadata, partitions, queue, reader, send_bytes};
use common::records::{normalized, raw_snapshot};
use common::{Run, Services, Worker, free_port, producer, send, wait_for, worker_env};
use muster_schemas::{
    Alert, AlertAction, AlertKind, Codec, DeadLetter, Direction, GateActivity, Health,
    NormalizedMetrics, RawCheckin, RawSnapshot, ServiceHealth, SourceOffset, TopicRecord,
    UpstreamAlert,
};
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

fn env(run: &str, port: u16) -> Vec<(&'static str, String)> {
    let mut env = worker_env(&format!("p{run}"), port);
    env.push(("MUSTER__PROCESSORS__BATCH_MAX_RECORDS", "2000".to_owned()));
    env
}

/// Starts `muster` with `args` as this run's processor worker, on a fresh ops port.
fn start(name: &str, args: &[&str], run: &str, dir: &Path) -> Worker {
    Worker::start(name, args, &env(run, free_port()), dir)
}

fn snapshot(event_id: &str, current: i64) -> RawSnapshot {
    raw_snapshot(
        event_id,
        chrono::Utc::now().timestamp_millis(),
        format!(r#"{{"participants":{{"total":1000}},"attendance":{{"current":{current}}}}}"#),
    )
}

/// Produces probes until the processor answers one: from then on it is consuming at the end of
/// the topic, so nothing produced later is skipped.
async fn wait_until_live<R: TopicRecord>(
    s: &Services,
    codec: &Codec,
    output: &str,
    probe: impl Fn() -> R,
    probe_event: &str,
) {
    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let out = reader(s, output, since);
    let p = producer(s);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            Instant::now() < deadline,
            "the processor never answered a probe"
        );
        send(&p, codec, &probe()).await;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), out.recv()).await
                && m.key() == Some(probe_event.as_bytes())
            {
                return;
            }
        }
    }
}

/// Probes until the normalizer answers: see [`wait_until_live`].
async fn wait_until_normalizing(s: &Services, codec: &Codec, run: &str) {
    let probe_event = format!("probe-{run}");
    wait_until_live(
        s,
        codec,
        &common::topic::<NormalizedMetrics>(),
        || snapshot(&probe_event, 1),
        &probe_event,
    )
    .await;
}

/// Waits until a probe on every raw partition has its output, resending the unanswered ones.
/// Each partition then has a committed offset before the run: a partition that changes owner
/// before its first commit is read by its next owner from `latest` (the tests' reset), which
/// would skip what was already produced to it.
async fn probe_every_partition(s: &Services, codec: &Codec, run: &str) {
    let partitions = partitions(&metadata(s), &common::topic::<RawSnapshot>());
    let out = reader(
        s,
        &common::topic::<NormalizedMetrics>(),
        chrono::Utc::now().timestamp_millis() - 1000,
    );
    let p = producer(s);
    let mut waiting: BTreeMap<String, i32> = partitions
        .into_iter()
        .map(|i| (format!("probe-{run}-p{i}"), i))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !waiting.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no answer to the probes on {waiting:?}"
        );
        for (event, partition) in &waiting {
            let payload = codec.encode(&snapshot(event, 1)).await.unwrap();
            p.send(
                FutureRecord::to(&common::topic::<RawSnapshot>())
                    .key(event)
                    .partition(*partition)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && !waiting.is_empty() {
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), out.recv()).await
                && let Some(key) = m.key()
            {
                waiting.remove(std::str::from_utf8(key).unwrap_or_default());
            }
        }
    }
}

/// What happens to the processors part-way through a run.
#[derive(Clone, Copy, PartialEq)]
enum Disruption {
    /// One processor, SIGKILLed at a fifth of the run and started again.
    KillAndRestart,
    /// Two processors sharing the partitions; one stops (SIGTERM) at a fifth, a new one joins
    /// at three fifths: two rebalances mid-stream.
    Rebalance,
}

/// Runs `n` snapshots through `muster process --only normalize` under `disruption` and checks
/// that each has exactly one output.
async fn exactly_once(n: usize, disruption: Disruption) {
    let (s, run, dir, codec) = Run::begin().parts();
    let args = ["process", "--only", "normalize"];
    let mut workers = vec![start("process-1", &args, &run, &dir)];
    if disruption == Disruption::Rebalance {
        workers.push(start("process-2", &args, &run, &dir));
    }
    wait_until_normalizing(&s, &codec, &run).await;
    probe_every_partition(&s, &codec, &run).await;

    // 100k snapshots over 10 events; remember where each landed.
    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let p = producer(&s);
    let events: Vec<String> = (0..10).map(|i| format!("eo{run}-{i}")).collect();
    let template = codec.encode(&snapshot(&events[0], 0)).await.unwrap();
    let mut expected = HashSet::with_capacity(n);
    let mut pending = Vec::new();
    for i in 0..n {
        let r = snapshot(&events[i % 10], (i % 1000) as i64);
        let payload = if i == 0 {
            template.clone()
        } else {
            codec.encode(&r).await.unwrap()
        };
        pending.push(queue(&p, &common::topic::<RawSnapshot>(), &r.event_id, &payload).await);
        if pending.len() == 10_000 || i == n - 1 {
            for d in pending.drain(..) {
                expected.insert(delivered(d).await);
            }
        }
    }
    assert_eq!(expected.len(), n);

    // Read the output; kill -9 the processor part-way, restart it, read on.
    let out = reader(&s, &common::topic::<NormalizedMetrics>(), since);
    let ours: HashSet<&str> = events.iter().map(String::as_str).collect();
    let mut seen: BTreeMap<(i32, i64), u32> = BTreeMap::new();
    let mut disrupted = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut quiet_since = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} outputs after 10 minutes",
            seen.len()
        );
        if disrupted == 0 && seen.len() >= n / 5 {
            disrupted += 1;
            match disruption {
                Disruption::KillAndRestart => {
                    workers[0].kill_hard();
                    workers[0] = start("process-2", &args, &run, &dir);
                }
                Disruption::Rebalance => {
                    let leaving = workers.remove(0);
                    assert!(leaving.terminate(Duration::from_secs(30)).success());
                }
            }
        }
        if disruption == Disruption::Rebalance && disrupted == 1 && seen.len() >= 3 * n / 5 {
            disrupted += 1;
            workers.push(start("process-3", &args, &run, &dir));
        }
        match tokio::time::timeout(Duration::from_secs(2), out.recv()).await {
            Ok(Ok(m)) => {
                if !m
                    .key()
                    .is_some_and(|k| ours.contains(std::str::from_utf8(k).unwrap_or("")))
                {
                    continue;
                }
                let r: NormalizedMetrics = codec.decode(m.payload().unwrap()).await.unwrap();
                *seen
                    .entry((r.source.partition, r.source.offset))
                    .or_default() += 1;
                quiet_since = None;
            }
            _ => {
                for w in workers.iter_mut() {
                    w.assert_running();
                }
                // Done once everything arrived and nothing more came for a while.
                if seen.len() == n {
                    let q = *quiet_since.get_or_insert_with(Instant::now);
                    if q.elapsed() > Duration::from_secs(6) {
                        break;
                    }
                }
            }
        }
    }
    assert!(disrupted > 0, "the disruption happened mid-run");
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicates.is_empty(),
        "outputs seen more than once: {duplicates:?}"
    );
    let produced: HashSet<(i32, i64)> = seen.keys().copied().collect();
    assert_eq!(produced, expected, "every input has exactly its one output");
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_run_neither_loses_nor_duplicates_outputs() {
    exactly_once(100_000, Disruption::KillAndRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_between_processors_neither_lose_nor_duplicate_outputs() {
    exactly_once(30_000, Disruption::Rebalance).await;
}

/// Under `auto_offset_reset = latest`, a processor killed before its first commit leaves its
/// successor nothing to skip: each partition's start was committed as it was assigned. (Before
/// that, the successor started at the end of the log as it was when *it* joined.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_before_its_first_commit_leaves_no_gap_under_latest() {
    let (s, run, dir, codec) = Run::begin().parts();
    let args = ["process", "--only", "normalize"];
    let mut first = start("process-1", &args, &run, &dir);
    let log = first.log.clone();
    wait_for(
        "the first processor's partitions",
        Duration::from_secs(90),
        || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("partitions assigned")
                    .then_some(())
            }
        },
    )
    .await;
    first.kill_hard();

    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let p = producer(&s);
    let event = format!("gap{run}");
    let mut expected = HashSet::new();
    for i in 0..20 {
        expected.insert(send(&p, &codec, &snapshot(&event, i)).await);
    }
    let _second = start("process-2", &args, &run, &dir);
    let out = reader(&s, &common::topic::<NormalizedMetrics>(), since);
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while seen != expected {
        assert!(
            Instant::now() < deadline,
            "the successor normalized {} of the 20 snapshots produced while no processor ran",
            seen.len()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), out.recv()).await
            && m.key() == Some(event.as_bytes())
        {
            let r: NormalizedMetrics = codec.decode(m.payload().unwrap()).await.unwrap();
            seen.insert((r.source.partition, r.source.offset));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_checkins_are_dead_lettered_and_on_time_ones_are_windowed() {
    let (s, run, dir, codec) = Run::begin().parts();
    let _worker = start(
        "process",
        &["process", "--only", "gate_throughput_1m"],
        &run,
        &dir,
    );
    let output = &common::topics().name("muster.windows.gate-throughput-1m.v1");
    let now = chrono::Utc::now().timestamp_millis();
    let checkin = |event: &str, direction, scanned_at: i64, received_at: i64| RawCheckin {
        event_id: event.to_owned(),
        gate_id: "G1".into(),
        participant: "p".into(),
        direction,
        scanned_at,
        received_at,
        delivery_id: "d".into(),
    };
    let probe_event = format!("probe-{run}");
    wait_until_live(
        &s,
        &codec,
        output,
        || checkin(&probe_event, Direction::In, now, now),
        &probe_event,
    )
    .await;

    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let event = format!("w{run}");
    let minute = now.div_euclid(60_000) * 60_000;
    let p = producer(&s);
    for (i, d) in [
        Direction::In,
        Direction::In,
        Direction::Out,
        Direction::In,
        Direction::Out,
        Direction::In,
        Direction::In,
    ]
    .into_iter()
    .enumerate()
    {
        let at = minute + i as i64 * 1000;
        send(&p, &codec, &checkin(&event, d, at, at + 1500)).await;
    }
    let late_at = now - 2 * 3600 * 1000;
    send(&p, &codec, &checkin(&event, Direction::In, late_at, now)).await;
    // Bytes that are not Avro at all, in the middle of good records.
    let garbage = format!("not avro {run}").into_bytes();
    send_bytes(&p, &common::topic::<RawCheckin>(), &event, &garbage).await;
    // Times DataFusion cannot window (they failed the whole batch, for every event, forever).
    let absurd_event = format!("{event}-absurd");
    let absurd = -3_250_000_000_000_000;
    send(
        &p,
        &codec,
        &checkin(&absurd_event, Direction::In, absurd, absurd),
    )
    .await;
    send(
        &p,
        &codec,
        &checkin(&event, Direction::In, minute + 7000, now),
    )
    .await;

    let windows = reader(&s, output, since);
    let (mut entries, mut exits) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (entries, exits) != (6, 2) {
        assert!(
            Instant::now() < deadline,
            "windowed counts {entries}/{exits}, expected 6/2"
        );
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), windows.recv()).await else {
            continue;
        };
        if m.key() != Some(event.as_bytes()) {
            continue;
        }
        let v = decode_json(&codec, m.payload().unwrap()).await;
        assert_eq!(v["gateId"], "G1");
        assert_eq!(v["windowStart"], serde_json::json!(minute), "{v}");
        assert_eq!(v["windowEnd"], serde_json::json!(minute + 60_000), "{v}");
        entries += v["entries"].as_i64().unwrap();
        exits += v["exits"].as_i64().unwrap();
    }

    let dead = reader(&s, &common::topic::<DeadLetter>(), since);
    let (mut late, mut undecodable, mut implausible) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while late.is_none() || undecodable.is_none() || implausible.is_none() {
        assert!(
            Instant::now() < deadline,
            "dead letters: late {late:?}, undecodable {undecodable:?}, implausible {implausible:?}"
        );
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), dead.recv()).await else {
            continue;
        };
        let Ok(dl) = codec.decode::<DeadLetter>(m.payload().unwrap()).await else {
            continue;
        };
        if dl.event_id.as_deref() == Some(event.as_str()) {
            late = Some(dl);
        } else if dl.event_id.as_deref() == Some(absurd_event.as_str()) {
            implausible = Some(dl);
        } else if dl.payload == garbage {
            undecodable = Some(dl);
        }
    }
    let implausible = implausible.unwrap();
    assert!(
        implausible.error.starts_with("implausible event time"),
        "{}",
        implausible.error
    );
    let (late, undecodable) = (late.unwrap(), undecodable.unwrap());
    assert_eq!(late.stage, "window:gate_throughput_1m");
    assert!(
        late.error.starts_with("late: arrived 7200.0 s after"),
        "{}",
        late.error
    );
    assert_eq!(late.source_topic, common::topic::<RawCheckin>());
    assert_eq!(undecodable.stage, "window:gate_throughput_1m");
    assert_eq!(undecodable.source_topic, common::topic::<RawCheckin>());
    assert!(!undecodable.error.is_empty());
}

fn metrics(
    event_id: &str,
    at: i64,
    current: i64,
    gates: &[(&str, &str)],
    upstream: &[&str],
) -> NormalizedMetrics {
    NormalizedMetrics {
        gate_activity: gates
            .iter()
            .map(|(id, status)| GateActivity {
                gate_id: (*id).into(),
                status: (*status).into(),
                throughput: 10.0,
            })
            .collect(),
        alerts: upstream
            .iter()
            .map(|id| UpstreamAlert {
                id: (*id).into(),
                severity: "warning".into(),
                message: "probe".into(),
            })
            .collect(),
        source: SourceOffset {
            topic: "test".into(),
            partition: 0,
            offset: at,
        },
        capacity: Some(1000),
        ..normalized(event_id, at, current)
    }
}

/// Reads alerts of `event` until `n` arrived, then a little longer to catch extras.
async fn alerts_of(out: &StreamConsumer, codec: &Codec, event: &str, n: usize) -> Vec<Alert> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut settle = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "{} of {n} alerts after 90 s: {got:?}",
            got.len()
        );
        if got.len() >= n {
            let since: &mut Instant = settle.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                return got;
            }
        }
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), out.recv()).await else {
            continue;
        };
        if m.key() == Some(event.as_bytes()) {
            got.push(codec.decode::<Alert>(m.payload().unwrap()).await.unwrap());
        }
    }
}

fn summary(alerts: &[Alert]) -> Vec<(AlertAction, AlertKind, Option<String>)> {
    alerts
        .iter()
        .map(|a| (a.action, a.kind, a.subject.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_raised_and_resolved_once_even_across_a_kill() {
    let (s, run, dir, codec) = Run::begin().parts();
    let args = ["process", "--only", "alerts"];
    let mut worker = start("alerts-1", &args, &run, &dir);
    let probe_event = format!("aprobe-{run}");
    let probes = std::cell::Cell::new(0);
    wait_until_live(
        &s,
        &codec,
        &common::topic::<Alert>(),
        || {
            // A new upstream alert each time, so every probe has an answer.
            probes.set(probes.get() + 1);
            let id = format!("probe{}", probes.get());
            metrics(&probe_event, probes.get(), 0, &[], &[id.as_str()])
        },
        &probe_event,
    )
    .await;

    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let out = reader(&s, &common::topic::<Alert>(), since);
    let p = producer(&s);
    let ev = format!("alerts-{run}");
    let t0 = chrono::Utc::now().timestamp_millis();
    // The metrics and health topics are read side by side, so each step waits for its answer
    // before the next one is sent. 95 % of capacity, then the service goes down.
    send(&p, &codec, &metrics(&ev, t0, 950, &[("G1", "open")], &[])).await;
    let mut first = alerts_of(&out, &codec, &ev, 1).await;
    send(
        &p,
        &codec,
        &ServiceHealth::observed(&ev, Health::Degraded, t0 + 1),
    )
    .await;
    send(
        &p,
        &codec,
        &ServiceHealth::observed(&ev, Health::Down, t0 + 2),
    )
    .await;
    first.extend(alerts_of(&out, &codec, &ev, 1).await);
    assert_eq!(
        summary(&first),
        [
            (AlertAction::Raised, AlertKind::Occupancy, None),
            (
                AlertAction::Raised,
                AlertKind::ServiceDown,
                Some("gates".into())
            ),
        ]
    );

    // The processor dies; its successor must remember both alerts from the state topic.
    worker.kill_hard();
    let _worker = start("alerts-2", &args, &run, &dir);
    send(
        &p,
        &codec,
        &metrics(&ev, t0 + 10, 960, &[("G1", "down")], &[]),
    )
    .await;
    let mut second = alerts_of(&out, &codec, &ev, 1).await;
    send(
        &p,
        &codec,
        &ServiceHealth::observed(&ev, Health::Healthy, t0 + 11),
    )
    .await;
    second.extend(alerts_of(&out, &codec, &ev, 1).await);
    send(
        &p,
        &codec,
        &metrics(&ev, t0 + 12, 100, &[("G1", "open")], &[]),
    )
    .await;
    second.extend(alerts_of(&out, &codec, &ev, 2).await);
    assert_eq!(
        summary(&second),
        [
            (AlertAction::Raised, AlertKind::GateDown, Some("G1".into())),
            (
                AlertAction::Resolved,
                AlertKind::ServiceDown,
                Some("gates".into())
            ),
            (AlertAction::Resolved, AlertKind::Occupancy, None),
            (
                AlertAction::Resolved,
                AlertKind::GateDown,
                Some("G1".into())
            ),
        ],
        "no alert raised twice, every one resolved: {second:?}"
    );
    assert_eq!(second[1].alert_id, first[1].alert_id);
    assert_eq!(second[2].alert_id, first[0].alert_id);
    assert_eq!(second[3].alert_id, second[0].alert_id);
    assert_eq!(second[2].duration_ms, Some(12));
    assert_eq!(second[1].raised_at, t0 + 2);
}

/// Decodes a record of a derived schema into JSON through the registry.
async fn decode_json(codec: &Codec, bytes: &[u8]) -> serde_json::Value {
    let value = codec.decode_any(bytes).await.unwrap();
    let mut obj = serde_json::Map::new();
    if let apache_avro::types::Value::Record(fields) = value {
        for (k, v) in fields {
            let v = match v {
                apache_avro::types::Value::Union(_, inner) => *inner,
                other => other,
            };
            obj.insert(
                k,
                match v {
                    apache_avro::types::Value::String(s) => serde_json::json!(s),
                    apache_avro::types::Value::Long(l)
                    | apache_avro::types::Value::TimestampMillis(l) => serde_json::json!(l),
                    apache_avro::types::Value::Int(i) => serde_json::json!(i),
                    apache_avro::types::Value::Double(d) => serde_json::json!(d),
                    apache_avro::types::Value::Null => serde_json::Value::Null,
                    other => serde_json::json!(format!("{other:?}")),
                },
            );
        }
    }
    serde_json::Value::Object(obj)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_output_schema_is_refused_before_anything_is_written() {
    let (_, run, dir, _) = Run::begin().parts();
    let sql_dir = dir.join("sql");
    std::fs::create_dir_all(&sql_dir).unwrap();
    let name = format!("compat_{run}");
    let topic = format!("muster.test-compat-{run}.v1");
    let write_sql = |extra: &str| {
        std::fs::write(
            sql_dir.join("compat.sql"),
            format!(
                "-- name: {name}\n-- input: checkins\n-- output: {topic}\n\
                 SELECT event_id, CAST(count(*) AS BIGINT) AS n{extra} FROM checkins GROUP BY event_id\n"
            ),
        )
        .unwrap();
    };
    let config = dir.join("compat.toml");
    std::fs::write(
        &config,
        format!(
            "[processors]\nsql_dirs = [{:?}]\n",
            sql_dir.display().to_string()
        ),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "process",
        "--only",
        &name,
    ];

    write_sql("");
    let list = common::muster()
        .args(["--config", config.to_str().unwrap(), "process", "--list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&name) && listed.contains("normalize"),
        "{listed}"
    );

    let port = free_port();
    let first = Worker::start("process-v1", &args, &env(&run, port), &dir);
    wait_for("v1 registered", Duration::from_secs(60), || async move {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(first.terminate(Duration::from_secs(30)).success());

    // A new non-null column without a default cannot read the old records: not BACKWARD.
    write_sql(", CAST(0 AS BIGINT) AS extra");
    let mut second = start("process-v2", &args, &run, &dir);
    let status = wait_for("muster to stop", Duration::from_secs(60), || {
        let status = second.try_status();
        async move { status }
    })
    .await;
    assert!(!status.success(), "an incompatible schema must stop muster");
    let log = second.log();
    assert!(
        log.contains(&format!(
            "refused the schema of {}-value",
            common::topics().name(&topic)
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstorable_snapshot_values_are_dead_lettered_and_other_events_keep_flowing() {
    let (s, run, dir, codec) = Run::begin().parts();
    let _worker = start("process", &["process", "--only", "normalize"], &run, &dir);
    wait_until_normalizing(&s, &codec, &run).await;
    // The event log keeps its history: topics muster creates (or finds) keep records forever.
    for topic in [
        &common::topic::<RawSnapshot>(),
        &common::topic::<NormalizedMetrics>(),
    ] {
        assert_eq!(
            common::kafka::topic_config(&s, topic, "retention.ms")
                .await
                .as_deref(),
            Some("-1"),
            "{topic}"
        );
    }

    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let (good, bad) = (format!("good-{run}"), format!("bad-{run}"));
    let with_body = |body: &str| RawSnapshot {
        body: body.to_owned(),
        ..snapshot(&bad, 0)
    };
    let poison = [
        with_body(r#"{"gates":[{"id":"G\u0000","status":"open"}]}"#),
        with_body(r#"{"attendance":{"current":9223372036854775807}}"#),
        with_body(r#"{"timestamp":"1970-01-01T00:00:00Z"}"#),
    ];
    let p = producer(&s);
    for (i, bad) in poison.iter().enumerate() {
        send(&p, &codec, &snapshot(&good, i as i64 + 1)).await;
        send(&p, &codec, bad).await;
    }
    send(&p, &codec, &snapshot(&good, 4)).await;

    let out = reader(&s, &common::topic::<NormalizedMetrics>(), since);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "good snapshots normalized: {seen:?}"
        );
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), out.recv()).await else {
            continue;
        };
        assert_ne!(m.key(), Some(bad.as_bytes()), "a poison snapshot flowed on");
        if m.key() == Some(good.as_bytes()) {
            let n: NormalizedMetrics = codec.decode(m.payload().unwrap()).await.unwrap();
            seen.push(n.current_attendees);
        }
    }
    assert_eq!(seen, [1, 2, 3, 4]);

    let dead = reader(&s, &common::topic::<DeadLetter>(), since);
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while errors.len() < 3 {
        assert!(Instant::now() < deadline, "dead letters: {errors:?}");
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), dead.recv()).await else {
            continue;
        };
        let Ok(dl) = codec.decode::<DeadLetter>(m.payload().unwrap()).await else {
            continue;
        };
        if dl.event_id.as_deref() == Some(bad.as_str()) {
            assert_eq!(dl.stage, "normalize");
            assert_eq!(dl.source_topic, common::topic::<RawSnapshot>());
            errors.push(dl.error);
        }
    }
    assert_eq!(
        errors,
        [
            "value cannot be stored: gates[0].id contains a NUL character",
            "value cannot be stored: attendance.current 9223372036854775807 is outside 0..=1000000000000",
            "value cannot be stored: timestamp 1970-01-01T00:00:00+00:00 is before 2000",
        ]
    );
}
