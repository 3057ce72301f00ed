//! Projections end to end against the real broker, registry and PostgreSQL: a worker killed
//! mid-stream ends with tables equal to a reference computed here from what was produced;
//! retention deletes exactly what is past it; a replay rebuilds tables equal to the live ones.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::db::wait_until_projecting;
use common::kafka::{delivered, queue};
use common::records::{gate_down, normalized};
use common::{Run, Services, Worker, db, free_port, producer, send, wait_for, worker_env};
use muster_schemas::{Alert, AlertAction, CatalogueEntry, Codec, NormalizedMetrics, Severity};
use rdkafka::producer::{DeliveryFuture, FutureProducer};

const MINUTE: i64 = 60_000;

/// `muster project` with the two projections of normalized snapshots.
const SERIES_AND_REALTIME: [&str; 5] = [
    "project",
    "--only",
    "event_series",
    "--only",
    "event_realtime",
];

/// A worker's settings: this run's consumer groups, batches of 500.
fn env(run: &str) -> Vec<(&'static str, String)> {
    let mut env = worker_env(&format!("j{run}"), free_port());
    env.push(("MUSTER__PROJECTIONS__BATCH_MAX_RECORDS", "500".to_owned()));
    env
}

async fn migrated(s: &Services) -> tokio_postgres::Client {
    let mut client = db::connect(&s.database).await;
    muster_projections::migrate(&mut client).await.unwrap();
    client
}

fn metrics(event: &str, at: i64, current: i64) -> NormalizedMetrics {
    NormalizedMetrics {
        capacity: Some(1200),
        ..normalized(event, at, current)
    }
}

/// (samples, sum, max, min) per (event, minute bucket in ms).
type Reference = BTreeMap<(String, i64), (i64, i64, i64, i64)>;

async fn minute_rows(client: &tokio_postgres::Client, prefix: &str) -> Reference {
    client
        .query(
            "SELECT event_id, (extract(epoch FROM bucket) * 1000)::bigint, samples,
                    attendees_sum, attendees_max, attendees_min
             FROM event_series_minute WHERE event_id LIKE $1 || '%'",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                (r.get(2), r.get(3), r.get(4), r.get(5)),
            )
        })
        .collect()
}

async fn samples(client: &tokio_postgres::Client, prefix: &str) -> i64 {
    client
        .query_one(
            "SELECT coalesce(sum(samples), 0)::bigint FROM event_series_minute
             WHERE event_id LIKE $1 || '%'",
            &[&prefix],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_stream_ends_equal_to_a_reference() {
    let (s, run, dir, codec) = Run::begin().parts();
    let client = migrated(&s).await;
    let mut worker = Worker::start("project-1", &SERIES_AND_REALTIME, &env(&run), &dir);
    let p = producer(&s);
    wait_until_projecting(&p, &codec, &client, &format!("kprobe{run}")).await;

    // 30,000 snapshots of 10 events over two hours, and the reference they must add up to.
    let prefix = format!("kill{run}-");
    let n = 30_000i64;
    let start = (chrono::Utc::now().timestamp_millis() - 2 * 3_600_000) / MINUTE * MINUTE;
    let mut reference: Reference = BTreeMap::new();
    let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let event = format!("{prefix}{}", i % 10);
        let at = start + i * 240;
        let current = (i * 7919) % 1000;
        let r = metrics(&event, at, current);
        let bucket = at / MINUTE * MINUTE;
        let e = reference
            .entry((event.clone(), bucket))
            .or_insert((0, 0, i64::MIN, i64::MAX));
        *e = (e.0 + 1, e.1 + current, e.2.max(current), e.3.min(current));
        latest.insert(event.clone(), (at, current));
        let payload = codec.encode(&r).await.unwrap();
        pending.push(queue(&p, &common::topic::<NormalizedMetrics>(), &event, &payload).await);
    }
    for d in pending {
        delivered(d).await;
    }

    // Kill -9 part-way, start again.
    let killed_at = wait_for(
        "a fifth of the records applied",
        Duration::from_secs(120),
        || {
            let (client, prefix) = (&client, &prefix);
            async move {
                let got = samples(client, prefix).await;
                (got >= n / 5).then_some(got)
            }
        },
    )
    .await;
    worker.kill_hard();
    assert!(killed_at < n, "the kill came after everything was applied");
    let _worker = Worker::start("project-2", &SERIES_AND_REALTIME, &env(&run), &dir);

    let deadline = Instant::now() + Duration::from_secs(300);
    let mut stable_since = None;
    loop {
        let got = samples(&client, &prefix).await;
        assert!(
            got <= n,
            "{got} samples applied for {n} records: double counting"
        );
        if got == n {
            let since: &mut Instant = stable_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {n} samples after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(minute_rows(&client, &prefix).await, reference);

    let hours: i64 = client
        .query_one(
            "SELECT sum(samples)::bigint FROM event_series_hour WHERE event_id LIKE $1 || '%'",
            &[&prefix],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hours, n, "hour buckets roll up every sample once");
    // `event_realtime` is another consumer group than `event_series`: the series being complete
    // says nothing about it. Wait until every event's row is at its newest snapshot's time.
    let realtime = |event: &str| {
        let (client, event) = (&client, event.to_owned());
        async move {
            client
                .query_opt(
                    "SELECT current_attendees, (extract(epoch FROM observed_at) * 1000)::bigint,
                            capacity
                     FROM event_realtime WHERE event_id = $1",
                    &[&event],
                )
                .await
                .unwrap()
        }
    };
    wait_for(
        "every realtime row at its newest snapshot",
        Duration::from_secs(120),
        || {
            let (latest, realtime) = (&latest, &realtime);
            async move {
                for (event, (at, _)) in latest {
                    let row = realtime(event).await?;
                    (row.get::<_, i64>(1) == *at).then_some(())?;
                }
                Some(())
            }
        },
    )
    .await;
    for (event, (at, current)) in latest {
        let row = realtime(&event).await.unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (current, at),
            "{event}: the realtime row is the newest snapshot"
        );
        assert_eq!(row.get::<_, Option<i64>>(2), Some(1200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_buckets_past_it() {
    let s = Services::from_env();
    let client = migrated(&s).await;
    let event = format!("ret{}", common::run_id());
    let now = chrono::Utc::now();
    let day = chrono::Duration::days(1);
    for (table, ages) in [
        ("event_series_minute", [20, 1]),
        ("event_series_hour", [500, 20]),
    ] {
        for age in ages {
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (event_id, bucket, samples, attendees_sum,
                            attendees_max, attendees_min, registered_max, rate_sum, last_at,
                            last_attendees)
                         VALUES ($1, $2, 1, 1, 1, 1, 1, 0.1, $2, 1)"
                    ),
                    &[&event, &(now - day * age)],
                )
                .await
                .unwrap();
        }
    }
    let cfg = muster_projections::config::RetentionConfig {
        minutes: Duration::from_secs(14 * 86_400),
        hours: Duration::from_secs(400 * 86_400),
        every: Duration::from_secs(60),
        dead_letters: Duration::from_secs(30 * 86_400),
        tables: Duration::from_secs(400 * 86_400),
    };
    muster_projections::retention::apply(&client, &cfg, &[], now)
        .await
        .unwrap();
    for (table, kept_age) in [("event_series_minute", 1), ("event_series_hour", 20)] {
        let ages: Vec<i64> = client
            .query(
                &format!(
                    "SELECT round(extract(epoch FROM $2 - bucket) / 86400)::bigint
                     FROM {table} WHERE event_id = $1"
                ),
                &[&event, &now],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            ages,
            [kept_age],
            "{table}: only the bucket within retention stays"
        );
    }
}

/// Gate `G{i}` of `event` down (raised at `t0` + `i` s), or up again `500 + i` ms later.
fn alert(event: &str, i: i64, action: AlertAction, t0: i64) -> Alert {
    let raised_at = t0 + i * 1000;
    let at = match action {
        AlertAction::Raised => raised_at,
        AlertAction::Resolved => raised_at + 500 + i,
    };
    Alert {
        severity: Severity::Critical,
        ..gate_down(event, i, action, raised_at, at)
    }
}

async fn alert_rows(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT row_to_json(a)::text FROM alerts a ORDER BY alert_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The definitions of the live `alerts` table's indexes.
async fn alert_indexes(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'alerts'
             ORDER BY indexdef",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_rebuilds_tables_equal_to_the_live_ones_and_swaps_them_in() {
    let (s, run, dir, codec) = Run::begin().parts();
    let client = migrated(&s).await;
    // The live projection must hold the whole topic to be comparable with a rebuild from
    // offset 0: start it from the beginning, with nothing stored from other test runs.
    client
        .batch_execute(
            "DELETE FROM projection_offsets WHERE projection = 'alerts'; TRUNCATE alerts",
        )
        .await
        .unwrap();
    let mut env = env(&run);
    env.push(("MUSTER__KAFKA__AUTO_OFFSET_RESET", "earliest".to_owned()));
    let worker = Worker::start(
        "project-alerts",
        &["project", "--only", "alerts"],
        &env,
        &dir,
    );

    let event = format!("replay{run}");
    let t0 = chrono::Utc::now().timestamp_millis();
    let p = producer(&s);
    for i in 0..20 {
        send(&p, &codec, &alert(&event, i, AlertAction::Raised, t0)).await;
    }
    for i in 0..15 {
        send(&p, &codec, &alert(&event, i, AlertAction::Resolved, t0)).await;
    }
    // Caught up: our 15 resolved alerts are there and the table stopped changing.
    let mut last = Vec::new();
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            Instant::now() < deadline,
            "the live projection never caught up"
        );
        let rows = alert_rows(&client).await;
        if rows != last {
            last = rows;
            stable_since = Instant::now();
        }
        let resolved: i64 = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'resolved') FROM alerts WHERE event_id = $1",
                &[&event],
            )
            .await
            .unwrap()
            .get(0);
        if resolved == 15 && stable_since.elapsed() > Duration::from_secs(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(worker.terminate(Duration::from_secs(30)).success());
    let live = alert_rows(&client).await;
    let ours: Vec<&String> = live.iter().filter(|r| r.contains(&event)).collect();
    assert_eq!(ours.len(), 20);
    assert!(
        ours.iter()
            .any(|r| r.contains(r#""state":"resolved""#) && r.contains(r#""duration_ms":500"#))
    );

    let indexes = alert_indexes(&client).await;
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    let dry = common::process::run_ok(&["replay", "alerts", "--dry-run"], &env);
    assert!(dry.contains("alerts: identical to the live table"), "{dry}");
    assert!(dry.contains("dry run"), "{dry}");
    assert_eq!(alert_rows(&client).await, live, "a dry run changes nothing");

    let swapped = common::process::run_ok(&["replay", "alerts"], &env);
    assert!(
        swapped.contains("alerts: identical to the live table"),
        "{swapped}"
    );
    assert!(swapped.contains("swapped in"), "{swapped}");
    assert_eq!(
        alert_rows(&client).await,
        live,
        "the rebuilt table serves the same rows"
    );
    // Built without its secondary indexes, the rebuild gets them before it is compared and
    // swapped in.
    assert_eq!(alert_indexes(&client).await, indexes);
    let leftovers: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'replay_alerts'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0, "the replay schema is gone after the swap");
}

fn catalogue(event: &str, removed: bool) -> CatalogueEntry {
    CatalogueEntry {
        event_id: event.to_owned(),
        service_name: "test".into(),
        name: format!("Expo {event}"),
        event_type: "exhibition".into(),
        venue: Some("Hall 1".into()),
        capacity: Some(1200),
        starts_at: None,
        ends_at: None,
        utc_offset_minutes: Some(540),
        ticket_price: Some(20.0),
        cost_total: None,
        other_income: None,
        currency: Some("JPY".into()),
        removed,
        at: chrono::Utc::now().timestamp_millis(),
    }
}

/// The status `/api/public/events` gives `event`, if it lists it.
async fn public_status(api: &str, event: &str) -> Option<String> {
    let body = common::get_json(&format!("{api}/api/public/events")).await?;
    body["events"]
        .as_array()?
        .iter()
        .find(|e| e["eventId"] == event)
        .map(|e| e["status"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_feeds_the_public_list_and_old_numbers_show_as_stale() {
    let (s, run, dir, codec) = Run::begin().parts();
    migrated(&s).await;
    let _project = Worker::start(
        "project-catalogue",
        &[
            "project",
            "--only",
            "event_catalogue",
            "--only",
            "event_realtime",
        ],
        &env(&run),
        &dir,
    );
    let (_api_worker, api) = common::api::start_api(&dir, &env(&run)).await;
    let api = api.base;
    let p = producer(&s);

    // A fresh event, re-sent until the workers consume: listed, and live. The catalogue and
    // realtime projections are separate consumers, so the list may show the event (`pending`)
    // before its numbers arrive: wait for the outcome, not for the first sign of progress.
    let fresh = format!("fresh{run}");
    let status = wait_for(
        "the fresh event in the public list with its numbers",
        Duration::from_secs(90),
        || {
            let (p, codec, fresh, api) = (&p, &codec, &fresh, &api);
            async move {
                send(p, codec, &catalogue(fresh, false)).await;
                let now = chrono::Utc::now().timestamp_millis();
                send(p, codec, &metrics(fresh, now, 300)).await;
                public_status(api, fresh)
                    .await
                    .filter(|s| s.as_str() != "pending")
            }
        },
    )
    .await;
    assert_eq!(status, "live");

    // An event whose last numbers are six minutes old is shown as stale, not live.
    let old = format!("old{run}");
    send(&p, &codec, &catalogue(&old, false)).await;
    let six_minutes_ago = chrono::Utc::now().timestamp_millis() - 6 * 60_000;
    send(&p, &codec, &metrics(&old, six_minutes_ago, 300)).await;
    let status = wait_for(
        "the old event's realtime row",
        Duration::from_secs(60),
        || {
            let (old, api) = (&old, &api);
            async move {
                public_status(api, old)
                    .await
                    .filter(|s| s.as_str() != "pending")
            }
        },
    )
    .await;
    assert_eq!(status, "stale");

    // A removal takes it off the list.
    send(&p, &codec, &catalogue(&fresh, true)).await;
    wait_for(
        "the removed event to leave the list",
        Duration::from_secs(60),
        || {
            let (fresh, api) = (&fresh, &api);
            async move { public_status(api, fresh).await.is_none().then_some(()) }
        },
    )
    .await;
    let client = db::connect(&s.database).await;
    let row = client
        .query_one(
            "SELECT name, removed, utc_offset_minutes FROM event_catalogue WHERE event_id = $1",
            &[&fresh],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), format!("Expo {fresh}"));
    assert!(
        row.get::<_, bool>(1),
        "the removal is kept, with the metadata"
    );
    assert_eq!(row.get::<_, Option<i32>>(2), Some(540));
}

/// A value PostgreSQL refuses, for the dead-letter tests.
struct Poison {
    /// A record of the bad record's event applied before it (to overflow a sum with).
    before: Option<NormalizedMetrics>,
    bad: NormalizedMetrics,
    /// The projections that refuse it.
    refused_by: &'static [&'static str],
    /// PostgreSQL's SQLSTATE for it.
    sqlstate: &'static str,
}

/// The bad record goes in the middle of a burst of good records of ten other events (one batch:
/// the batch waits 3 s for records): every good one applies, the bad one is recorded in
/// `dead_letters` with its stage, source offset and PostgreSQL's message, published to the
/// dead-letter topic once per stage, the worker never restarts, and records produced
/// afterwards apply too.
async fn a_bad_record_is_dead_lettered_while_the_rest_applies(
    kind: &str,
    poison: impl FnOnce(&str, i64) -> Poison,
) {
    let (s, run, dir, codec) = Run::begin().parts();
    let client = migrated(&s).await;
    let ops = free_port();
    let mut envs = env(&run);
    envs.push(("MUSTER__OPS__ADDR", format!("127.0.0.1:{ops}")));
    envs.push(("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "3s".to_owned()));
    let mut worker = Worker::start(
        &format!("project-{kind}"),
        &SERIES_AND_REALTIME,
        &envs,
        &dir,
    );
    let p = producer(&s);
    wait_until_projecting(&p, &codec, &client, &format!("{kind}probe{run}")).await;

    let good = format!("{kind}{run}-g");
    let t0 = (chrono::Utc::now().timestamp_millis() - 30 * MINUTE) / MINUTE * MINUTE;
    let poison = poison(&format!("{kind}{run}-x"), t0);
    if let Some(before) = &poison.before {
        send(&p, &codec, before).await;
        wait_for("the record before", Duration::from_secs(60), || {
            let (client, event) = (&client, &before.event_id);
            async move {
                let n: i64 = client
                    .query_one(
                        "SELECT count(*) FROM event_series_minute WHERE event_id = $1",
                        &[event],
                    )
                    .await
                    .ok()?
                    .get(0);
                (n > 0).then_some(())
            }
        })
        .await;
    }
    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let burst: Vec<NormalizedMetrics> = (0..41i64)
        .map(|i| {
            if i == 20 {
                poison.bad.clone()
            } else {
                metrics(&format!("{good}{}", i % 10), t0 + i * 1000, 100 + i)
            }
        })
        .collect();
    let bad_at = common::kafka::send_burst(&p, &codec, &burst).await[20];

    let applied = |want: i64| {
        let (client, good) = (&client, &good);
        async move {
            let n = samples(client, good).await;
            let rt: i64 = client
                .query_one(
                    "SELECT count(*) FROM event_realtime WHERE event_id LIKE $1 || '%'",
                    &[good],
                )
                .await
                .unwrap()
                .get(0);
            (n == want && rt == 10).then_some(())
        }
    };
    wait_for("every good record applied", Duration::from_secs(90), || {
        applied(40)
    })
    .await;

    let expected_event = poison.bad.event_id.replace('\0', "\u{FFFD}");
    let stages: Vec<String> = poison
        .refused_by
        .iter()
        .map(|p| format!("project:{p}"))
        .collect();
    let (rows, published) = common::kafka::dead_letters_of(
        &s,
        &codec,
        &client,
        &common::topic::<NormalizedMetrics>(),
        bad_at,
        poison.refused_by.len(),
        since,
    )
    .await;
    // The change log was written in the batches' transactions: every good event under both
    // kinds, and the bad event only under the projections that applied it (and `before`). The
    // dead letters are recorded, so each refusing projection has committed the bad record's
    // batch; one that applied it may still be on its way.
    let bad_prefix = poison.bad.event_id.split('\0').next().unwrap().to_owned();
    for (projection, change) in [("event_realtime", "realtime"), ("event_series", "series")] {
        let count = |sql: &'static str, prefix: String| {
            let client = &client;
            async move {
                client
                    .query_one(sql, &[&change, &prefix])
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };
        let good_events = count(
            "SELECT count(DISTINCT event_id) FROM change_log WHERE kind = $1 AND event_id LIKE $2 || '%'",
            good.clone(),
        )
        .await;
        assert_eq!(good_events, 10, "{projection}");
        let bad_rows =
            "SELECT count(*) FROM change_log WHERE kind = $1 AND event_id LIKE $2 || '%'";
        let before = i64::from(poison.before.is_some());
        if poison.refused_by.contains(&projection) {
            let n = count(bad_rows, bad_prefix.clone()).await;
            assert_eq!(
                n, before,
                "{projection}: the refused record announced nothing"
            );
        } else {
            // One row per event and batch, whether `before` shared the batch or not.
            wait_for(
                "the applied bad record's change",
                Duration::from_secs(60),
                || {
                    let n = count(bad_rows, bad_prefix.clone());
                    async move { (n.await >= 1).then_some(()) }
                },
            )
            .await;
        }
    }

    let bad_payload = codec.encode(&poison.bad).await.unwrap();
    for (row, stage) in rows.iter().zip(&stages) {
        assert_eq!(&row.get::<_, String>(0), stage);
        let reason: String = row.get(1);
        assert!(
            reason.contains(&format!("SQLSTATE {}", poison.sqlstate)),
            "{stage}: {reason}"
        );
        assert_eq!(
            row.get::<_, Option<String>>(2),
            Some(expected_event.clone())
        );
        assert_eq!(row.get::<_, Vec<u8>>(3), bad_payload, "the original bytes");
    }

    let mut got: Vec<&str> = published.iter().map(|d| d.stage.as_str()).collect();
    got.sort();
    assert_eq!(got, stages, "published once per stage: {published:?}");
    assert!(
        published
            .iter()
            .all(|d| d.error.contains(poison.sqlstate) && d.payload == bad_payload)
    );

    // The worker never restarted, and records after the bad one apply.
    let restarts = common::projection_restarts(ops).await;
    assert!(restarts.is_empty(), "the worker restarted: {restarts:?}");
    for i in 0..10i64 {
        let r = metrics(&format!("{good}{i}"), t0 + 60_000 + i, 7);
        send(&p, &codec, &r).await;
    }
    wait_for(
        "the records after the bad one",
        Duration::from_secs(60),
        || applied(50),
    )
    .await;
    worker.assert_running();
    assert!(worker.terminate(Duration::from_secs(60)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_text_is_dead_lettered_while_other_events_advance() {
    a_bad_record_is_dead_lettered_while_the_rest_applies("pnul", |event, t0| Poison {
        before: None,
        bad: metrics(&format!("{event}\0nul"), t0 + 500, 5),
        refused_by: &["event_realtime", "event_series"],
        sqlstate: "22021",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sum_past_bigint_is_dead_lettered_while_other_events_advance() {
    a_bad_record_is_dead_lettered_while_the_rest_applies("pbig", |event, t0| Poison {
        before: Some(metrics(event, t0, 5)),
        bad: metrics(event, t0 + 500, i64::MAX),
        refused_by: &["event_series"],
        sqlstate: "22003",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_out_of_range_is_dead_lettered_while_other_events_advance() {
    // About 101,000 BC: chrono holds it, PostgreSQL's timestamptz does not.
    a_bad_record_is_dead_lettered_while_the_rest_applies("ptime", |event, _| Poison {
        before: None,
        bad: metrics(event, -3_250_000_000_000_000, 5),
        refused_by: &["event_realtime", "event_series"],
        sqlstate: "22008",
    })
    .await;
}

/// A gate window as `gate_throughput_1m` writes it, in the schema derived from its query.
struct GateWindows {
    topic: &'static str,
    schema: String,
}

impl GateWindows {
    fn new() -> Self {
        let def = muster_processors::sql::SqlDefinition::parse(
            "gate_throughput_1m.sql",
            include_str!("../../processors/sql/gate_throughput_1m.sql"),
        )
        .unwrap();
        let topic = def.output;
        let p = muster_processors::sql::SqlProcessor::new(def, Duration::from_secs(60)).unwrap();
        Self {
            topic,
            schema: p.avro_schema().to_owned(),
        }
    }

    async fn encode(&self, codec: &Codec, event: &str, gate: &str, start: i64) -> Vec<u8> {
        use apache_avro::types::Value;
        let schema: serde_json::Value = serde_json::from_str(&self.schema).unwrap();
        let mut fields = Vec::new();
        for f in schema["fields"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let (ty, nullable) = match &f["type"] {
                serde_json::Value::Array(u) => (u.iter().find(|t| *t != "null").unwrap(), true),
                t => (t, false),
            };
            let at = |ms: i64| match ty["logicalType"].as_str() {
                Some("timestamp-micros") => Value::TimestampMicros(ms * 1000),
                _ => Value::TimestampMillis(ms),
            };
            let v = match name {
                "eventId" => Value::String(event.to_owned()),
                "gateId" => Value::String(gate.to_owned()),
                "windowStart" => at(start),
                "windowEnd" => at(start + MINUTE),
                "entries" => Value::Long(3),
                "exits" => Value::Long(1),
                other => panic!("gate window field {other} unknown to this test"),
            };
            let v = if nullable {
                Value::Union(1, Box::new(v))
            } else {
                v
            };
            fields.push((name.to_owned(), v));
        }
        codec
            .encode_value(self.topic, &self.schema, Value::Record(fields))
            .await
            .unwrap()
    }

    /// Queues the window of `event`'s `gate` from `start`; its delivery is not awaited.
    async fn queue(
        &self,
        p: &FutureProducer,
        codec: &Codec,
        event: &str,
        gate: &str,
        start: i64,
    ) -> DeliveryFuture {
        let payload = self.encode(codec, event, gate, start).await;
        queue(p, &common::topics().name(self.topic), event, &payload).await
    }
}

/// The issue's own case: a gate id holding a NUL in the middle of other events' windows. Every
/// other window reaches `gate_series_minute`, the bad one is recorded and published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_window_with_a_nul_gate_id_is_dead_lettered_while_other_gates_advance() {
    let (s, run, dir, codec) = Run::begin().parts();
    let client = migrated(&s).await;
    let mut envs = env(&run);
    envs.push(("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "3s".to_owned()));
    let mut worker = Worker::start(
        "project-gates",
        &["project", "--only", "gate_series"],
        &envs,
        &dir,
    );
    let p = producer(&s);
    let windows = GateWindows::new();
    let t0 = (chrono::Utc::now().timestamp_millis() - 30 * MINUTE) / MINUTE * MINUTE;
    let rows = |prefix: String| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*), coalesce(sum(entries), 0)::bigint FROM gate_series_minute
                     WHERE event_id LIKE $1 || '%'",
                    &[&prefix],
                )
                .await
                .unwrap()
        }
    };
    let probe = format!("gprobe{run}");
    wait_for("the projection to consume", Duration::from_secs(90), || {
        let (p, codec, windows, rows, probe) = (&p, &codec, &windows, &rows, &probe);
        async move {
            delivered(windows.queue(p, codec, probe, "G1", t0).await).await;
            (rows(probe.clone()).await.get::<_, i64>(0) > 0).then_some(())
        }
    })
    .await;

    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let good = format!("gg{run}-");
    // Queued, not awaited one by one, so that a burst lands in one batch.
    let mut queued = Vec::new();
    for i in 0..21i64 {
        let (event, gate, start) = if i == 10 {
            (format!("gx{run}"), "G\0bad".to_owned(), t0)
        } else {
            (format!("{good}{}", i % 5), format!("G{i}"), t0 + i * MINUTE)
        };
        queued.push(windows.queue(&p, &codec, &event, &gate, start).await);
    }
    let mut bad_at = (0, 0);
    for (i, d) in queued.into_iter().enumerate() {
        let at = delivered(d).await;
        if i == 10 {
            bad_at = at;
        }
    }
    wait_for("every good window applied", Duration::from_secs(90), || {
        let rows = &rows;
        let good = good.clone();
        async move {
            let r = rows(good).await;
            ((r.get::<_, i64>(0), r.get::<_, i64>(1)) == (20, 60)).then_some(())
        }
    })
    .await;
    let (rows, published) = common::kafka::dead_letters_of(
        &s,
        &codec,
        &client,
        &common::topics().name(windows.topic),
        bad_at,
        1,
        since,
    )
    .await;
    assert_eq!(rows[0].get::<_, String>(0), "project:gate_series");
    let reason: String = rows[0].get(1);
    assert!(reason.contains("SQLSTATE 22021"), "{reason}");
    assert_eq!(published.len(), 1, "published once: {published:?}");
    assert_eq!(published[0].stage, "project:gate_series");
    worker.assert_running();
    assert!(worker.terminate(Duration::from_secs(60)).success());
}
