//! The raw archive end to end against the real broker, registry and PostgreSQL: records of the
//! three archived topics land in Parquet once each, by day and event, and DataFusion reads them
//! back; bad bytes go to the dead-letter topic instead; kill -9 mid-stream loses and duplicates
//! nothing.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kafka::{delivered, queue, send_bytes};
use common::records::{normalized, raw_snapshot};
use common::{Run, Services, Worker, db, free_port, producer, wait_for, worker_env};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use muster_schemas::{
    Codec, Direction, GateActivity, NormalizedMetrics, RawCheckin, RawSnapshot, SourceOffset,
    TopicRecord,
};

/// 2026-01-01T00:00:00Z: records just before and after land in two date folders.
const NEW_YEAR: i64 = 1_767_225_600_000;
const DATES: [(&str, i64); 2] = [
    ("2025-12-31", NEW_YEAR - 3_600_000),
    ("2026-01-01", NEW_YEAR),
];

/// The archive's folder under the run's `dir`, and the env of an archiver writing there in
/// batches of `batch`.
fn archiver(run: &str, dir: &Path, batch: usize) -> (PathBuf, Vec<(&'static str, String)>) {
    let archive = dir.join("archive");
    let mut env = worker_env(&format!("a{run}"), free_port());
    env.extend([
        // The fixtures' days (DATES) are older than the default 90 days of check-ins: keep
        // them, while a 2020 day still expires.
        ("MUSTER__KAFKA__RETENTION__PERSONAL", "3years".to_owned()),
        (
            "MUSTER__PROJECTIONS__ARCHIVE__URL",
            format!("file://{}", archive.display()),
        ),
        (
            "MUSTER__PROJECTIONS__ARCHIVE__BATCH_MAX_RECORDS",
            batch.to_string(),
        ),
        (
            "MUSTER__PROJECTIONS__ARCHIVE__BATCH_MAX_WAIT",
            "1s".to_owned(),
        ),
    ]);
    (archive, env)
}

fn checkin(event: &str, scanned_at: i64, i: usize) -> RawCheckin {
    RawCheckin {
        event_id: event.to_owned(),
        gate_id: format!("G{}", i % 4),
        participant: format!("p{i}"),
        direction: if i.is_multiple_of(3) {
            Direction::Out
        } else {
            Direction::In
        },
        scanned_at,
        received_at: scanned_at + 1000,
        delivery_id: format!("d{i}"),
    }
}

fn snapshot(event: &str, fetched_at: i64, i: usize) -> RawSnapshot {
    RawSnapshot {
        capacity: Some(1000),
        ..raw_snapshot(
            event,
            fetched_at,
            format!(r#"{{"attendance":{{"current":{i}}}}}"#),
        )
    }
}

fn metrics(event: &str, timestamp: i64, i: usize) -> NormalizedMetrics {
    NormalizedMetrics {
        gate_activity: vec![GateActivity {
            gate_id: "G1".into(),
            status: "open".into(),
            throughput: 2.5,
        }],
        source: SourceOffset {
            topic: RawSnapshot::TOPIC.into(),
            partition: 0,
            offset: i as i64,
        },
        ..normalized(event, timestamp, i as i64)
    }
}

/// A DataFusion session over one topic's folder, with the Hive partition columns.
async fn table(root: &Path, topic: &str) -> Option<SessionContext> {
    let dir = root.join(topic);
    if !dir.exists() {
        return None;
    }
    let ctx = SessionContext::new();
    let options = ParquetReadOptions::default().table_partition_cols(vec![
        ("date".to_owned(), DataType::Utf8),
        ("event".to_owned(), DataType::Utf8),
    ]);
    ctx.register_parquet("t", format!("{}/", dir.display()), options)
        .await
        .unwrap();
    Some(ctx)
}

/// Every row of `sql`'s answer, each value as text.
async fn query(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, i).unwrap())
                    .collect(),
            );
        }
    }
    rows
}

/// Rows per (event, date) of the events starting with `prefix`.
async fn counts(root: &Path, topic: &str, prefix: &str) -> BTreeMap<(String, String), usize> {
    let Some(ctx) = table(root, topic).await else {
        return BTreeMap::new();
    };
    query(
        &ctx,
        &format!(
            "SELECT event, date, count(*) FROM t WHERE event LIKE '{prefix}%' GROUP BY event, date"
        ),
    )
    .await
    .into_iter()
    .map(|r| ((r[0].clone(), r[1].clone()), r[2].parse().unwrap()))
    .collect()
}

/// Log positions stored more than once, and rows whose folder is not their event's.
async fn anomalies(root: &Path, topic: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let Some(ctx) = table(root, topic).await else {
        return (vec![], vec![]);
    };
    let twice = query(
        &ctx,
        "SELECT kafka_partition, kafka_offset, count(*) FROM t
         GROUP BY kafka_partition, kafka_offset HAVING count(*) > 1 LIMIT 5",
    )
    .await;
    let misplaced = query(
        &ctx,
        "SELECT event, event_id FROM t WHERE event <> event_id LIMIT 5",
    )
    .await;
    (twice, misplaced)
}

/// Produces check-in probes until one is archived: from then on the archiver reads whatever
/// is produced.
async fn wait_until_archiving(s: &Services, codec: &Codec, root: &Path, run: &str) {
    let probe = format!("ap{run}");
    let p = producer(s);
    let payload = codec
        .encode(&checkin(&probe, chrono::Utc::now().timestamp_millis(), 0))
        .await
        .unwrap();
    let folder = |root: &Path| -> bool {
        let Ok(dates) = std::fs::read_dir(root.join(RawCheckin::TOPIC)) else {
            return false;
        };
        dates
            .flatten()
            .any(|d| d.path().join(format!("event={probe}")).exists())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !folder(root) {
        assert!(
            Instant::now() < deadline,
            "the archiver never archived a probe"
        );
        send_bytes(&p, &common::topic::<RawCheckin>(), &probe, &payload).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Waits until the counts of `topic` for `prefix` are `expected`, then a little longer to see
/// that they stay so; and no log position is archived twice.
async fn assert_archived(
    root: &Path,
    topic: &str,
    prefix: &str,
    expected: &BTreeMap<(String, String), usize>,
) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let now = counts(root, topic, prefix).await;
        if now == *expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: expected {expected:?}, archived {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(&counts(root, topic, prefix).await, expected, "{topic}");
    let (twice, misplaced) = anomalies(root, topic).await;
    assert!(twice.is_empty(), "{topic}: rows archived twice: {twice:?}");
    assert!(
        misplaced.is_empty(),
        "{topic}: rows in another event's folder: {misplaced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_record_is_archived_once_by_date_and_event_and_bad_bytes_are_dead_lettered() {
    let (s, run, dir, codec) = Run::begin().parts();
    let (root, envs) = archiver(&run, &dir, 200);
    // Days of check-ins past their retention (90 days by default) leave the archive; other
    // topics' days stay.
    let old_checkins = root.join("muster.raw.checkins.v1/date=2020-01-01/event=old/part-0-1.bin");
    let old_normalized = root.join("muster.normalized.v1/date=2020-01-01/event=old/part-0-1.bin");
    for f in [&old_checkins, &old_normalized] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"old").unwrap();
    }
    let worker = Worker::start("project", &["project"], &envs, &dir);
    wait_until_archiving(&s, &codec, &root, &run).await;
    common::wait_for(
        "old check-ins to be pruned",
        Duration::from_secs(30),
        || {
            let gone = !old_checkins.exists();
            async move { gone.then_some(()) }
        },
    )
    .await;
    assert!(old_normalized.exists(), "only personal topics expire");
    // Leave no empty folders behind for the readers below.
    for topic in ["muster.raw.checkins.v1", "muster.normalized.v1"] {
        let _ = std::fs::remove_dir_all(root.join(topic).join("date=2020-01-01"));
        let _ = std::fs::remove_dir(root.join(topic));
    }
    let since = chrono::Utc::now().timestamp_millis() - 1000;

    // Three events, two dates, a different number of records of each topic for each pair.
    let p = producer(&s);
    let raw_prefix = format!("ar{run}-");
    let norm_prefix = format!("an{run}-");
    let mut expected: BTreeMap<&str, BTreeMap<(String, String), usize>> = BTreeMap::new();
    let mut pending = Vec::new();
    for e in 0..3 {
        for (d, (date, start)) in DATES.iter().enumerate() {
            for (t, &topic) in muster_projections::archive::TOPICS.iter().enumerate() {
                let n = 20 + 7 * e + 5 * d + 11 * t;
                let event = if topic == NormalizedMetrics::TOPIC {
                    format!("{norm_prefix}{e}")
                } else {
                    format!("{raw_prefix}{e}")
                };
                expected
                    .entry(topic)
                    .or_default()
                    .insert((event.clone(), date.to_string()), n);
                for i in 0..n {
                    let at = start + i as i64 * 1000;
                    let payload = match t {
                        0 => codec.encode(&snapshot(&event, at, i)).await.unwrap(),
                        1 => codec.encode(&checkin(&event, at, i)).await.unwrap(),
                        _ => codec.encode(&metrics(&event, at, i)).await.unwrap(),
                    };
                    pending.push(queue(&p, &common::topics().name(topic), &event, &payload).await);
                }
            }
        }
    }
    let bad_event = format!("{raw_prefix}bad");
    let bad = send_bytes(
        &p,
        &common::topic::<RawCheckin>(),
        &bad_event,
        b"not avro at all",
    )
    .await;
    for d in pending {
        delivered(d).await;
    }

    for (topic, expected) in &expected {
        let prefix = if *topic == NormalizedMetrics::TOPIC {
            &norm_prefix
        } else {
            &raw_prefix
        };
        assert_archived(&root, topic, prefix, expected).await;
    }
    let file = root.join(format!(
        "{}/date=2025-12-31/event={raw_prefix}0",
        RawCheckin::TOPIC
    ));
    let names: Vec<String> = std::fs::read_dir(&file)
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("part-") && n.ends_with(".parquet")),
        "{names:?}"
    );

    // Recorded with the batch's offsets, then published from the table, once.
    let client = db::connect(&s.database).await;
    let (rows, mut published) = common::kafka::dead_letters_of(
        &s,
        &codec,
        &client,
        &common::topic::<RawCheckin>(),
        bad,
        1,
        since,
    )
    .await;
    assert_eq!(rows[0].get::<_, String>(0), "archive");
    let reason: String = rows[0].get(1);
    // The check-in topic has other readers: a window processor may dead-letter it too.
    published.retain(|dl| dl.stage == "archive");
    assert_eq!(published.len(), 1, "published once: {published:?}");
    assert_eq!(published[0].error, reason);
    assert_eq!(published[0].payload, b"not avro at all");

    assert!(worker.terminate(Duration::from_secs(60)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archiver_killed_mid_stream_neither_loses_nor_duplicates_rows() {
    let (s, run, dir, codec) = Run::begin().parts();
    let (root, envs) = archiver(&run, &dir, 1000);
    let mut worker = Worker::start("project-1", &["project"], &envs, &dir);
    wait_until_archiving(&s, &codec, &root, &run).await;

    // 24,000 check-ins over four events and two dates, produced over about six seconds.
    let prefix = format!("ak{run}-");
    let n = 24_000;
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    let produce = {
        let (s, codec, prefix) = (Services::from_env(), codec.clone(), prefix.clone());
        tokio::spawn(async move {
            let p = producer(&s);
            let mut pending = Vec::new();
            for i in 0..n {
                let event = format!("{prefix}{}", i % 4);
                let at = DATES[(i / 4) % 2].1 + i as i64;
                let payload = codec.encode(&checkin(&event, at, i)).await.unwrap();
                pending.push(queue(&p, &common::topic::<RawCheckin>(), &event, &payload).await);
                if i % 1000 == 999 {
                    for d in pending.drain(..) {
                        delivered(d).await;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            for d in pending {
                delivered(d).await;
            }
        })
    };
    for i in 0..n {
        let key = (
            format!("{prefix}{}", i % 4),
            DATES[(i / 4) % 2].0.to_owned(),
        );
        *expected.entry(key).or_default() += 1;
    }

    // kill -9 twice while records keep coming, each time once more rows are archived.
    let mut restarts = Vec::new();
    for (k, at_least) in [(2, n / 6), (3, n / 2)] {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            worker.assert_running();
            let archived: usize = counts(&root, RawCheckin::TOPIC, &prefix)
                .await
                .values()
                .sum();
            if archived >= at_least {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {archived} of {at_least} rows archived"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        worker.kill_hard();
        restarts.push(worker);
        worker = Worker::start(&format!("project-{k}"), &["project"], &envs, &dir);
    }
    produce.await.unwrap();

    assert_archived(&root, RawCheckin::TOPIC, &prefix, &expected).await;
    worker.assert_running();
    let redone = [&worker]
        .into_iter()
        .chain(restarts.iter().skip(1))
        .filter(|w| w.log().contains("rewriting the batch a crash left pending"))
        .count();
    eprintln!("restarts that rewrote a pending batch: {redone} of 2");
    assert!(worker.terminate(Duration::from_secs(60)).success());
}

/// The state a crash leaves between storing a batch's intent and finishing it, made on purpose:
/// check-ins produced while the archiver is stopped are marked pending in PostgreSQL, and one
/// of the batch's files is already there, half written. The next archiver must re-read exactly
/// that range and write the same files over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_left_pending_by_a_crash_is_rewritten_over_its_own_files() {
    let (s, run, dir, codec) = Run::begin().parts();
    let (root, envs) = archiver(&run, &dir, 200);
    let worker = Worker::start("project-1", &["project"], &envs, &dir);
    wait_until_archiving(&s, &codec, &root, &run).await;
    assert!(worker.terminate(Duration::from_secs(60)).success());

    let prefix = format!("ac{run}-");
    let p = producer(&s);
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    // Per (event, date): the partition and offsets its records landed at.
    let mut landed: BTreeMap<(String, String), Vec<(i32, i64)>> = BTreeMap::new();
    for i in 0..300 {
        let event = format!("{prefix}{}", i % 2);
        let (date, start) = DATES[(i / 2) % 2];
        let payload = codec
            .encode(&checkin(&event, start + i as i64, i))
            .await
            .unwrap();
        let at = send_bytes(&p, &common::topic::<RawCheckin>(), &event, &payload).await;
        let key = (event, date.to_owned());
        *expected.entry(key.clone()).or_default() += 1;
        landed.entry(key).or_default().push(at);
    }
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for &(partition, offset) in landed.values().flatten() {
        let end = ends.entry(partition).or_default();
        *end = (*end).max(offset + 1);
    }

    let db = db::connect(&s.database).await;
    let archive = format!("a{run}.archive");
    for (partition, end) in &ends {
        let marked = db
            .execute(
                "UPDATE archive_offsets SET pending_end = $4
                 WHERE archive = $1 AND topic = $2 AND partition = $3 AND next_offset < $4",
                &[&archive, &common::topic::<RawCheckin>(), partition, end],
            )
            .await
            .unwrap();
        assert_eq!(marked, 1, "partition {partition} marked pending");
    }
    let ((event, date), at) = landed.iter().next().unwrap();
    let (partition, first) = at[0];
    let half_written = root.join(format!(
        "{}/date={date}/event={event}/part-{partition}-{first}.parquet",
        RawCheckin::TOPIC
    ));
    std::fs::create_dir_all(half_written.parent().unwrap()).unwrap();
    std::fs::write(&half_written, b"PAR1 and then the crash").unwrap();

    let worker = Worker::start("project-2", &["project"], &envs, &dir);
    let (db, archive) = (&db, &archive);
    wait_for("the pending batch finished", Duration::from_secs(120), || async move {
        let left: i64 = db
            .query_one(
                "SELECT count(*) FROM archive_offsets WHERE archive = $1 AND pending_end IS NOT NULL",
                &[archive],
            )
            .await
            .unwrap()
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    assert!(
        worker
            .log()
            .contains("rewriting the batch a crash left pending"),
        "{}",
        worker.log_tail()
    );
    assert_archived(&root, RawCheckin::TOPIC, &prefix, &expected).await;
    assert!(worker.terminate(Duration::from_secs(60)).success());
}
