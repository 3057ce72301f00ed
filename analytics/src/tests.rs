use super::*;

#[tokio::test]
async fn writes_and_ddl_are_refused_and_runaways_stopped() {
    let ctx = SessionContext::new();
    let limits = Limits {
        timeout: Duration::from_millis(300),
        max_rows: 3,
        ..Limits::default()
    };
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE x",
        "INSERT INTO t VALUES (1)",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; DROP TABLE x",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
    ] {
        assert!(
            matches!(
                query(&ctx, sql, &limits).await,
                Err(QueryError::NotReadOnly(_))
            ),
            "{sql}"
        );
    }
    let a = query(&ctx, "SELECT * FROM range(10)", &limits)
        .await
        .unwrap();
    assert_eq!((a.rows, a.truncated), (3, true));
    let slow = "SELECT count(*) FROM range(100000000) a, range(100000000) b";
    assert!(matches!(
        query(&ctx, slow, &limits).await,
        Err(QueryError::Timeout(_))
    ));
}

#[tokio::test]
async fn answers_past_their_bytes_and_queries_past_their_memory_are_refused() {
    let ctx = SessionContext::new();
    let limits = Limits {
        max_bytes: 64 << 10,
        memory: 4 << 20,
        ..Limits::default()
    };
    // 20,000 int64s: 160 KB of answer, under the row limit.
    let e = query(&ctx, "SELECT value FROM range(20000)", &limits)
        .await
        .unwrap_err();
    assert!(
        matches!(e, QueryError::TooLarge { limit } if limit == 64 << 10),
        "{e}"
    );
    // Within both: answered whole.
    let a = query(&ctx, "SELECT value FROM range(5000)", &limits)
        .await
        .unwrap();
    assert_eq!((a.rows, a.truncated), (5000, false));
    // One group collecting 8 MB cannot spill: refused by the pool, not by the process.
    let e = query(
        &ctx,
        "SELECT cardinality(array_agg(value)) AS n FROM range(1000000)",
        &limits,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, QueryError::Memory { .. }), "{e}");
    assert!(e.to_string().contains("more memory than its limit"), "{e}");
    // A sort past the pool spills to disk and still answers.
    let a = query(
        &ctx,
        "SELECT r FROM (SELECT value, row_number() OVER (ORDER BY value DESC) AS r \
         FROM range(1000000)) WHERE value = 0",
        &limits,
    )
    .await
    .unwrap();
    assert_eq!(a.rows, 1);
}

#[test]
fn a_key_past_its_concurrent_queries_is_refused_until_one_ends() {
    let slots = Slots::new(2);
    let first = slots.try_acquire("a").unwrap();
    let _second = slots.try_acquire("a").unwrap();
    assert!(matches!(slots.try_acquire("a"), Err(QueryError::Busy(2))));
    // Another key is not held back.
    let _other = slots.try_acquire("b").unwrap();
    drop(first);
    assert!(slots.try_acquire("a").is_ok());
}

#[test]
fn json_rows_past_their_bytes_are_refused() {
    let batch = RecordBatch::try_from_iter([(
        "a_long_column_name",
        Arc::new(datafusion::arrow::array::Int32Array::from(vec![1; 1000]))
            as datafusion::arrow::array::ArrayRef,
    )])
    .unwrap();
    assert_eq!(
        json_rows_within(std::slice::from_ref(&batch), 1 << 20)
            .unwrap()
            .len(),
        1000
    );
    assert!(matches!(
        json_rows_within(&[batch], 10_000),
        Err(QueryError::TooLarge { limit: 10_000 })
    ));
}
