//! `muster sql` as an analyst runs it: DataFusion over the projections in PostgreSQL, in each
//! output format, with writes refused and a runaway query stopped by its time limit.

use crate::common;

use std::process::Output;

use common::process::{run, run_failing, stdout_of};
use common::{Services, db, run_id};

fn sql(args: &[&str]) -> Output {
    run(&[&["sql"][..], args].concat(), &[])
}

fn stdout(o: Output) -> String {
    stdout_of(o, "muster sql")
}

/// What `muster sql` says on failing.
fn sql_fails(args: &[&str]) -> String {
    run_failing(&[&["sql"][..], args].concat(), &[])
}

#[tokio::test]
async fn analysts_query_projections_read_only_within_limits() {
    let s = Services::from_env();
    let event = format!("sql{}", run_id());
    let mut pool_client = db::connect(&s.database).await;
    muster_projections::migrate(&mut pool_client).await.unwrap();
    db::insert_three_minutes(&pool_client, &event).await;
    let q = format!(
        "SELECT event_id, sum(samples) AS samples, max(last_attendees) AS peak, \
         min(bucket) AS first FROM event_series_minute WHERE event_id = '{event}' \
         GROUP BY event_id"
    );
    let csv = stdout(sql(&[&q, "--format", "csv"]));
    assert_eq!(
        csv,
        format!("event_id,samples,peak,first\n{event},6,130,2026-11-24T09:01:00Z\n")
    );
    let json = stdout(sql(&[&q, "--format", "json"]));
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(row["samples"], 6);
    assert_eq!(row["peak"], 130);
    let table = stdout(sql(&[&q]));
    assert!(
        table.contains("| event_id") && table.contains(&event),
        "{table}"
    );

    // Parquet to a file, read back by DataFusion.
    let file = std::env::temp_dir().join(format!("{event}.parquet"));
    stdout(sql(&[
        &q,
        "--format",
        "parquet",
        "--output",
        file.to_str().unwrap(),
    ]));
    let ctx = datafusion::prelude::SessionContext::new();
    let back = ctx
        .read_parquet(file.to_str().unwrap(), Default::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

    // The row limit cuts and says so.
    let some = format!("SELECT bucket FROM event_series_minute WHERE event_id = '{event}'");
    let o = sql(&[&some, "--format", "csv", "--max-rows", "2"]);
    let left_out = String::from_utf8_lossy(&o.stderr).contains("more were left out");
    assert_eq!(stdout(o).lines().count(), 3);
    assert!(left_out);

    // Writes and DDL are refused, and nothing changed.
    for bad in [
        format!("DELETE FROM event_series_minute WHERE event_id = '{event}'"),
        "DROP TABLE event_series_minute".to_owned(),
        "CREATE TABLE x AS SELECT 1".to_owned(),
        format!(
            "INSERT INTO event_series_minute SELECT * FROM event_series_minute WHERE event_id = '{event}'"
        ),
    ] {
        let err = sql_fails(&[&bad]);
        assert!(err.contains("only queries that read"), "{bad}: {err}");
    }
    let n: i64 = pool_client
        .query_one(
            "SELECT count(*) FROM event_series_minute WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);

    // A runaway query is stopped by the time limit.
    let err = sql_fails(&[
        "SELECT count(*) FROM range(1000000000) a, range(1000000000) b",
        "--timeout",
        "2s",
    ]);
    assert!(err.contains("was stopped"));
}

/// A scan reads from PostgreSQL only what the query keeps: its simple filters and its limit go
/// into the SQL (the scan outputs 3 rows of 5,000, and DataFusion filters nothing after it);
/// `muster sql` refuses an answer past `--max-bytes` and a query past `--memory-limit`, saying
/// which.
#[tokio::test]
async fn scans_push_filters_and_limits_down_and_sql_stays_within_its_bytes_and_memory() {
    let s = Services::from_env();
    let event = format!("push{}", run_id());
    let pool = muster_runtime::DatabaseConfig {
        url: s.database.clone(),
        ..Default::default()
    }
    .pool()
    .unwrap();
    {
        let mut client = pool.get().await.unwrap();
        muster_projections::migrate(&mut client).await.unwrap();
        db::insert_minutes_from_2030(&client, &event, 5000).await;
    }
    let ctx = muster_analytics::context(&pool, None).await.unwrap();
    let explain = |q: String| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx
                .sql(&format!("EXPLAIN ANALYZE {q}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        }
    };
    let plan = explain(format!(
        "SELECT bucket FROM event_series_minute WHERE event_id = '{event}' AND samples > 100 \
         AND bucket >= '2030-01-01T00:00:00Z' LIMIT 3"
    ))
    .await;
    let scan = plan
        .lines()
        .find(|l| l.contains("StreamingTableExec"))
        .unwrap_or_else(|| panic!("no scan in {plan}"));
    assert!(scan.contains("output_rows=3"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    // A filter PostgreSQL cannot take exactly (a float) stays in DataFusion, and the answer is
    // the same.
    let a = muster_analytics::query(
        &ctx,
        &format!(
            "SELECT count(*) AS n FROM event_series_minute WHERE event_id = '{event}' \
             AND samples IN (1, 2, 3) AND rate_sum > 0.1"
        ),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        muster_analytics::to_json_rows(&a.batches).unwrap()[0]["n"],
        3
    );

    let all = format!("SELECT * FROM event_series_minute WHERE event_id = '{event}'");
    let err = sql_fails(&[&all, "--max-bytes", "10000"]);
    assert!(
        err.contains("larger than the limit of 10000 bytes"),
        "{err}"
    );
    let agg = format!(
        "SELECT cardinality(array_agg(concat(event_id, bucket))) AS n FROM event_series_minute \
         WHERE event_id = '{event}'"
    );
    let err = sql_fails(&[&agg, "--memory-limit", "65536"]);
    assert!(
        err.contains("more memory than its limit of 65536 bytes"),
        "{err}"
    );
    assert_eq!(stdout(sql(&[&agg, "--format", "csv"])), "n\n5000\n");
    db::delete_minutes(&pool.get().await.unwrap(), &event).await;
}
