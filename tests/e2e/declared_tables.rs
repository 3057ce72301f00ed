//! A folder processor with a `-- table:` header, added to a running system: its table's rows
//! equal the test's own computation over the check-ins it sent, after a kill -9 of the
//! processor and of the projection mid-stream, and after `muster replay`.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka::send_bytes;
use common::{Run, Worker, free_port, producer, send, wait_for, worker_env};
use muster_schemas::{Direction, RawCheckin};

const TABLE: &str = "gate_flow_10m";
const TEN_MINUTES: i64 = 600_000;

/// One row of the table: (entries, exits, first scan, last scan), by (event, gate, window).
type Rows = BTreeMap<(String, String, i64), (i64, i64, i64, i64)>;

fn sql() -> String {
    format!(
        "-- name: {TABLE}\n\
         -- description: entries and exits per gate per 10 minutes\n\
         -- input: checkins\n\
         -- output: muster.test-gate-flow-10m.v1\n\
         -- table: {TABLE}\n\
         -- key: event_id, gate_id, window_start\n\
         -- merge: entries = sum, exits = sum, first_scan = min, last_scan = max\n\
         SELECT event_id, gate_id, date_bin(INTERVAL '10 minutes', scanned_at) AS window_start,\n\
             CAST(sum(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS BIGINT) AS entries,\n\
             CAST(sum(CASE WHEN direction = 'out' THEN 1 ELSE 0 END) AS BIGINT) AS exits,\n\
             min(scanned_at) AS first_scan, max(scanned_at) AS last_scan\n\
         FROM checkins\n\
         GROUP BY event_id, gate_id, date_bin(INTERVAL '10 minutes', scanned_at)\n"
    )
}

/// The table as the test computes it from the check-ins it sent.
fn expected(sent: &[RawCheckin]) -> Rows {
    let mut rows = Rows::new();
    for c in sent {
        let window = c.scanned_at.div_euclid(TEN_MINUTES) * TEN_MINUTES;
        let row = rows
            .entry((c.event_id.clone(), c.gate_id.clone(), window))
            .or_insert((0, 0, i64::MAX, i64::MIN));
        match c.direction {
            Direction::In => row.0 += 1,
            Direction::Out => row.1 += 1,
        }
        row.2 = row.2.min(c.scanned_at);
        row.3 = row.3.max(c.scanned_at);
    }
    rows
}

async fn table(client: &tokio_postgres::Client) -> Rows {
    client
        .query(
            &format!(
                "SELECT event_id, gate_id, (extract(epoch FROM window_start) * 1000)::bigint,
                    entries, exits, (extract(epoch FROM first_scan) * 1000)::bigint,
                    (extract(epoch FROM last_scan) * 1000)::bigint FROM {TABLE}"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1), r.get(2)),
                (r.get(3), r.get(4), r.get(5), r.get(6)),
            )
        })
        .collect()
}

/// Waits until the table holds `want`, with what it holds in the panic.
async fn wait_for_rows(client: &tokio_postgres::Client, want: &Rows, what: &str) {
    let mut last = Rows::new();
    let got = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            last = table(client).await;
            if &last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(
        got.is_ok(),
        "{what}: the table never matched.\nwant {want:?}\ngot  {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_table_merges_exactly_once_across_kills_and_a_replay() {
    let (s, run, dir, codec) = Run::begin().parts();
    let sql_dir = dir.join("sql");
    std::fs::create_dir_all(&sql_dir).unwrap();
    std::fs::write(sql_dir.join("gate_flow.sql"), sql()).unwrap();
    let config = dir.join("declared.toml");
    std::fs::write(
        &config,
        format!(
            "[processors]\nsql_dirs = [{:?}]\nbatch_max_records = 50\n\n[projections]\nbatch_max_records = 20\n",
            sql_dir.display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // The test's topics are its own: read them from their start.
    let env = || {
        let mut env = worker_env(&format!("d{run}"), free_port());
        env.push(("MUSTER__KAFKA__AUTO_OFFSET_RESET", "earliest".to_owned()));
        env
    };
    let process = ["--config", config, "process", "--only", TABLE];
    let project = ["--config", config, "project", "--only", TABLE];
    let mut processor = Worker::start("process-1", &process, &env(), &dir);
    let mut projection = Worker::start("project-1", &project, &env(), &dir);
    let project_port = free_port();
    let client = common::db::connect(&s.database).await;
    let db = &client;

    let now = chrono::Utc::now().timestamp_millis();
    let checkin = |i: usize| RawCheckin {
        event_id: format!("e{}-{run}", i % 3),
        gate_id: format!("G{}", i % 4),
        participant: format!("p{i}"),
        direction: if i.is_multiple_of(5) {
            Direction::Out
        } else {
            Direction::In
        },
        // Spread over the last 4 minutes (within the allowed lateness), across windows.
        scanned_at: now - 240_000 + (i as i64 * 97) % 240_000,
        received_at: now,
        delivery_id: format!("d{i}"),
    };
    let p = producer(&s);
    let mut sent = Vec::new();
    let n = 1500;
    for i in 0..n {
        let c = checkin(i);
        send(&p, &codec, &c).await;
        sent.push(c);
        if i == n / 3 {
            // Mid-stream: the table has started filling; the processor dies without a word.
            wait_for("the first rows", Duration::from_secs(120), || async move {
                (!table(db).await.is_empty()).then_some(())
            })
            .await;
            processor.kill_hard();
            processor = Worker::start("process-2", &process, &env(), &dir);
        }
        if i == 2 * n / 3 {
            let before = &table(db).await;
            wait_for("more rows", Duration::from_secs(120), || async move {
                (table(db).await != *before).then_some(())
            })
            .await;
            projection.kill_hard();
            let mut env = env();
            env.push(("MUSTER__OPS__ADDR", format!("127.0.0.1:{project_port}")));
            projection = Worker::start("project-2", &project, &env, &dir);
        }
    }
    // A record the projection cannot read is set aside as a dead letter; the rest applies.
    let output = common::topics().name("muster.test-gate-flow-10m.v1");
    let bad_at = send_bytes(&p, &output, &format!("e0-{run}"), b"not avro").await;
    let (output, stage) = (&output, &format!("project:{TABLE}"));
    let want = expected(&sent);
    wait_for_rows(&client, &want, "after the kills").await;
    let reason: String = wait_for("the dead letter", Duration::from_secs(60), || async move {
        db.query_opt(
            "SELECT reason FROM dead_letters WHERE stage = $1 AND source_topic = $2
               AND source_partition = $3 AND source_offset = $4",
            &[stage, output, &bad_at.0, &bad_at.1],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
    })
    .await;
    assert!(!reason.is_empty());
    processor.assert_running();
    projection.assert_running();
    // It shows on the worker's metrics like the hand-written projections.
    let metrics = common::scrape(&format!("http://127.0.0.1:{project_port}")).await;
    assert!(
        metrics.contains(&format!(
            "muster_projection_records_total{{projection=\"{TABLE}\"}}"
        )),
        "{metrics}"
    );

    // The table is a read model like the others: rebuilt from its topic and swapped in.
    let replay_env = env();
    let out = common::process::run_ok(&["--config", config, "replay", TABLE], &replay_env);
    assert!(
        out.contains(&format!("{TABLE}: identical to the live table")),
        "{out}"
    );
    assert!(out.contains("swapped in"), "{out}");
    wait_for_rows(&client, &want, "after the replay").await;
    let listed = common::process::run_ok(&["--config", config, "replay", "--list"], &replay_env);
    assert!(listed.contains(TABLE), "{listed}");

    // Queryable like the other read models: `muster sql`, and a partner's scoped view.
    let total = common::process::run_ok(
        &[
            "sql",
            &format!("SELECT sum(entries + exits) AS n FROM {TABLE}"),
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(total, format!("n\n{n}\n"));
    let pool = muster_runtime::DatabaseConfig {
        url: s.database.clone(),
        ..Default::default()
    }
    .pool()
    .unwrap();
    let granted = format!("e0-{run}");
    let ctx = muster_analytics::projections(&pool, Some(vec![granted.clone()]))
        .await
        .unwrap();
    let seen = muster_analytics::query(
        &ctx,
        &format!("SELECT DISTINCT event_id FROM {TABLE}"),
        &muster_analytics::Limits::default(),
    )
    .await
    .unwrap();
    let seen = muster_analytics::to_json_rows(&seen.batches).unwrap();
    assert_eq!(seen, [serde_json::json!({ "event_id": granted })]);
}

/// At start, a query that adds a nullable column adds it to the table; one that changes a
/// column's type is refused with a message, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_table_gains_nullable_columns_and_refuses_other_changes() {
    let (s, _, dir, _) = Run::begin().parts();
    let sql_dir = dir.join("sql");
    std::fs::create_dir_all(&sql_dir).unwrap();
    let file = sql_dir.join("flow.sql");
    let write = |columns: &str| {
        std::fs::write(
            &file,
            format!(
                "-- name: flow\n-- input: checkins\n-- output: muster.test-flow.v1\n\
                 -- table: flow\n-- key: event_id, window_start\n\
                 -- merge: entries = sum, last_scan = max\n\
                 SELECT event_id, date_bin(INTERVAL '10 minutes', scanned_at) AS window_start,\n\
                 {columns}\nFROM checkins GROUP BY 1, 2\n"
            ),
        )
        .unwrap()
    };
    let config = dir.join("flow.toml");
    std::fs::write(
        &config,
        format!(
            "[processors]\nsql_dirs = [{:?}]\n",
            sql_dir.display().to_string()
        ),
    )
    .unwrap();
    let migrate = ["--config", config.to_str().unwrap(), "migrate"];
    let client = common::db::connect(&s.database).await;
    let columns = || async {
        client
            .query(
                "SELECT column_name || ' ' || data_type FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = 'flow' ORDER BY ordinal_position",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };

    write("CAST(count(*) AS BIGINT) AS entries");
    // Without the merge rule's column in the query: refused at load, naming the file and line.
    let e = common::process::run_failing(&migrate, &[]);
    assert!(
        e.contains(&format!(
            "{}:6: merged column last_scan is not a column of the query",
            file.display()
        )),
        "{e}"
    );
    write("CAST(count(*) AS BIGINT) AS entries, CAST(NULL AS TIMESTAMP) AS last_scan");
    common::process::run_ok(&migrate, &[]);
    let v1 = columns().await;
    assert_eq!(
        v1,
        [
            "event_id text",
            "window_start timestamp with time zone",
            "entries bigint",
            "last_scan timestamp with time zone"
        ]
    );

    // A new nullable column is added.
    write(
        "CAST(count(*) AS BIGINT) AS entries, CAST(NULL AS TIMESTAMP) AS last_scan, \
         CAST(NULL AS BIGINT) AS exits",
    );
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("last_scan = max", "last_scan = max, exits = sum"),
    )
    .unwrap();
    common::process::run_ok(&migrate, &[]);
    let v2 = columns().await;
    assert_eq!(v2[..4], v1[..]);
    assert_eq!(v2[4], "exits bigint");

    // A changed type is refused before anything is written.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap().replace(
            "CAST(count(*) AS BIGINT) AS entries",
            "CAST(count(*) AS DOUBLE) AS entries",
        ),
    )
    .unwrap();
    let e = common::process::run_failing(&migrate, &[]);
    assert!(
        e.contains("table flow: column entries changed type from bigint to double precision"),
        "{e}"
    );
    assert_eq!(columns().await, v2);
    let recorded: serde_json::Value = client
        .query_one("SELECT spec FROM declared_tables WHERE name = 'flow'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded["columns"][2]["type"], "bigint");
}
