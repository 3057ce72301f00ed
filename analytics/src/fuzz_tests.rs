//! Property tests of the SQL read-only guard ([`check_read_only`] and [`plan`]), the parser of
//! every analyst query (HTTP, Flight SQL, `muster sql`): writes, DDL, several statements, writes
//! in CTEs, file-reading functions and the admin tables are refused with an error, however they
//! are dressed (comments, case, whitespace); a set of analyst queries is always accepted; no
//! input panics. Run longer with `PROPTEST_CASES=100000 cargo test --workspace --lib fuzz`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use muster_schemas::read_models::{ADMIN_TABLES, TABLES};
use proptest::prelude::*;

use super::*;

/// Every table analysts see, as [`projections`] registers them (the admin tables never are),
/// each with an `event_id` and a count.
fn allowed() -> Vec<&'static str> {
    let mut t: Vec<&str> = TABLES.to_vec();
    t.extend(insights::tables::TABLES);
    t
}

static SESSION: LazyLock<(tokio::runtime::Runtime, SessionContext)> = LazyLock::new(|| {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("n", DataType::Int64, true),
    ]));
    for t in allowed() {
        let table = MemTable::try_new(schema.clone(), vec![vec![]]).expect("table");
        ctx.register_table(t, Arc::new(table)).expect("registers");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    (rt, ctx)
});

/// Plans `sql` as the API does; `Ok` with the plan's text, or the refusal.
fn plan_of(sql: &str) -> Result<String, QueryError> {
    let (rt, ctx) = &*SESSION;
    rt.block_on(plan(ctx, sql))
        .map(|df| df.logical_plan().display_indent().to_string())
}

fn table() -> impl Strategy<Value = String> {
    prop::sample::select(allowed()).prop_map(str::to_owned)
}

fn admin_table() -> impl Strategy<Value = String> {
    prop::sample::select(ADMIN_TABLES.to_vec()).prop_flat_map(|t| {
        prop::sample::select(vec![
            t.to_owned(),
            t.to_ascii_uppercase(),
            format!("\"{t}\""),
            format!("public.{t}"),
            format!("datafusion.public.{t}"),
            format!("muster.{t}"),
        ])
    })
}

/// Statements that write, define, configure or run something: each must be refused as not
/// read-only, whatever table it names.
fn write(t: String) -> Vec<String> {
    vec![
        format!("INSERT INTO {t} VALUES ('e', 1)"),
        format!("INSERT INTO {t} SELECT * FROM {t}"),
        format!("DELETE FROM {t}"),
        format!("UPDATE {t} SET n = 0"),
        format!("DROP TABLE {t}"),
        format!("DROP VIEW IF EXISTS {t}"),
        format!("TRUNCATE {t}"),
        format!("ALTER TABLE {t} ADD COLUMN x INT"),
        format!("CREATE TABLE x AS SELECT * FROM {t}"),
        format!("CREATE VIEW v AS SELECT * FROM {t}"),
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".into(),
        format!("COPY {t} TO '/tmp/x.csv'"),
        format!("COPY (SELECT * FROM {t}) TO '/tmp/x.parquet' STORED AS PARQUET"),
        format!("SELECT * INTO x FROM {t}"),
        format!("EXPLAIN ANALYZE INSERT INTO {t} VALUES ('e', 1)"),
        format!("EXPLAIN SELECT * FROM {t}"),
        "SET datafusion.execution.batch_size = 1".into(),
        "RESET datafusion.execution.batch_size".into(),
        format!("PREPARE p AS SELECT * FROM {t}"),
        "EXECUTE p".into(),
        "CREATE FUNCTION f() RETURNS INT RETURN 1".into(),
        "BEGIN".into(),
        "COMMIT".into(),
        "DESCRIBE x".into(),
        "CREATE SCHEMA s".into(),
        "DROP SCHEMA public CASCADE".into(),
    ]
}

/// Reads that must fail anyway: the admin tables, files and URLs as tables, functions that read
/// files or the system.
fn forbidden_read(t: String, admin: String) -> Vec<String> {
    vec![
        format!("SELECT * FROM {admin}"),
        format!("SELECT count(*) FROM {admin} WHERE stage = 'x'"),
        format!("SELECT * FROM {t} JOIN {admin} USING (event_id)"),
        format!("SELECT * FROM {t} WHERE event_id IN (SELECT event_id FROM {admin})"),
        format!("WITH d AS (SELECT * FROM {admin}) SELECT * FROM d"),
        format!("SELECT event_id FROM {t} UNION ALL SELECT event_id FROM {admin}"),
        "SELECT * FROM '/etc/passwd'".into(),
        "SELECT * FROM 'file:///etc/passwd'".into(),
        "SELECT * FROM 's3://bucket/x.parquet'".into(),
        "SELECT * FROM read_parquet('/etc/passwd')".into(),
        "SELECT * FROM read_csv('/etc/passwd')".into(),
        "SELECT * FROM read_json('/etc/passwd')".into(),
        "SELECT pg_read_file('/etc/passwd')".into(),
        "SELECT * FROM pg_ls_dir('.')".into(),
        "SELECT lo_import('/etc/passwd')".into(),
        "SELECT load_extension('x')".into(),
        format!("SELECT * FROM {t}, LATERAL read_parquet('/etc/passwd')"),
    ]
}

/// Writes hidden inside something that reads: CTEs, several statements.
fn disguised(t: String, good: String, write: String) -> Vec<String> {
    vec![
        format!("WITH w AS (INSERT INTO {t} VALUES ('e', 1) RETURNING *) SELECT * FROM w"),
        format!("WITH w AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM w"),
        format!("WITH w AS ({write}) SELECT 1"),
        format!("SELECT * FROM ({write}) AS w"),
        format!("{good}; {write}"),
        format!("{good};{write};"),
        format!("{write}; {good}"),
        format!("{good}; {good}"),
        format!("{good} /* ; */ ; {write}"),
    ]
}

/// Queries analysts run every day: each must be accepted.
fn analyst_queries(t: String, t2: String) -> Vec<String> {
    vec![
        format!("SELECT * FROM {t}"),
        format!("SELECT event_id, count(*) AS c FROM {t} GROUP BY event_id ORDER BY c DESC"),
        format!("select * from {t} where n > 10 limit 5"),
        format!("SELECT a.event_id, b.n FROM {t} a JOIN {t2} b ON a.event_id = b.event_id"),
        format!("WITH x AS (SELECT * FROM {t}) SELECT max(n) FROM x"),
        format!("SELECT * FROM {t} WHERE event_id = 'x; DROP TABLE {t}; --'"),
        format!("SELECT event_id FROM {t} UNION SELECT event_id FROM {t2}"),
        format!("SELECT * FROM {t} WHERE event_id IN (SELECT event_id FROM {t2})"),
        format!("SELECT \"event_id\", n FROM \"{t}\""),
        format!("SELECT * FROM {t};"),
        format!("-- INSERT INTO {t}\nSELECT 1"),
        "/* DELETE FROM alerts; */ SELECT 1".into(),
        "SELECT table_name FROM information_schema.tables".into(),
        "SELECT * FROM information_schema.columns".into(),
        "SHOW TABLES".into(),
        "SHOW ALL".into(),
        "VALUES (1, 'a'), (2, 'b')".into(),
        "SELECT * FROM range(3)".into(),
        "SELECT upper('drop table x'), sha256('insert')".into(),
    ]
}

/// Dresses a statement up without changing what it does: leading and trailing whitespace,
/// comments, and the case of its keywords (identifiers and literals are left as they are).
fn dress(sql: &str, (case, lead, trail): (u8, usize, usize)) -> String {
    const KEYWORDS: &[&str] = &[
        "SELECT", "FROM", "WHERE", "INSERT", "INTO", "DELETE", "UPDATE", "DROP", "CREATE", "WITH",
        "COPY", "TO", "AS", "TABLE", "VALUES", "UNION", "JOIN", "SET", "EXPLAIN",
    ];
    let mut out = sql.to_owned();
    if case > 0 {
        for k in KEYWORDS {
            let dressed: String = k
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if (case >> (i % 8)) & 1 == 1 {
                        c.to_ascii_lowercase()
                    } else {
                        c
                    }
                })
                .collect();
            out = out.replace(&format!("{k} "), &format!("{dressed} "));
        }
    }
    let leads = ["", "  ", "\n\t", "/* SELECT 1 */ ", "-- read only\n"];
    let trails = ["", " ", "\n", " -- SELECT", " /* done */"];
    format!(
        "{}{out}{}",
        leads[lead % leads.len()],
        trails[trail % trails.len()]
    )
}

fn dressing() -> impl Strategy<Value = (u8, usize, usize)> {
    any::<(u8, usize, usize)>()
}

proptest! {
    #[test]
    fn fuzz_writes_are_refused_as_not_read_only(
        t in prop_oneof![table(), admin_table()], i in any::<prop::sample::Index>(), d in dressing(),
    ) {
        let writes = write(t);
        let sql = dress(&writes[i.index(writes.len())], d);
        let r = plan_of(&sql);
        prop_assert!(matches!(r, Err(QueryError::NotReadOnly(_))), "{} gave {:?}", sql, r);
    }

    #[test]
    fn fuzz_forbidden_reads_are_refused(
        t in table(), admin in admin_table(), i in any::<prop::sample::Index>(), d in dressing(),
    ) {
        let reads = forbidden_read(t, admin);
        let sql = dress(&reads[i.index(reads.len())], d);
        match plan_of(&sql) {
            Ok(plan) => prop_assert!(false, "{} was planned: {}", sql, plan),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn fuzz_writes_disguised_as_reads_are_refused(
        t in table(), good_i in any::<prop::sample::Index>(), write_i in any::<prop::sample::Index>(),
        i in any::<prop::sample::Index>(), d in dressing(),
    ) {
        let goods = analyst_queries(t.clone(), t.clone());
        let good = goods[good_i.index(goods.len())].trim_end_matches(';').to_owned();
        let writes = write(t.clone());
        let w = writes[write_i.index(writes.len())].clone();
        let all = disguised(t, good, w);
        let sql = dress(&all[i.index(all.len())], d);
        match plan_of(&sql) {
            Ok(plan) => prop_assert!(false, "{} was planned: {}", sql, plan),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn fuzz_analyst_queries_are_accepted(
        t in table(), t2 in table(), i in any::<prop::sample::Index>(), d in dressing(),
    ) {
        let goods = analyst_queries(t, t2);
        let sql = dress(&goods[i.index(goods.len())], d);
        let r = plan_of(&sql);
        prop_assert!(r.is_ok(), "{} was refused: {:?}", sql, r.err());
    }

    /// Token soup and arbitrary text: refused with an error, or planned as a read that names no
    /// admin table and holds no write.
    #[test]
    fn fuzz_any_text_is_a_read_or_refused(sql in prop_oneof![
        ".{0,80}",
        prop::collection::vec(prop::sample::select(vec![
            "SELECT", "*", "FROM", "WHERE", "INSERT", "INTO", "VALUES", "(", ")", ";", "--", "/*",
            "*/", "WITH", "AS", "DELETE", "UPDATE", "SET", "DROP", "TABLE", "CREATE", "COPY", "TO",
            "'x'", "1", "dead_letter_log", "alerts", "event_realtime", "UNION", "ALL", "JOIN", "ON",
            "=", "information_schema.tables", "SHOW", "EXPLAIN", "read_parquet('/etc/passwd')",
            "RETURNING", "LIMIT", ",", "event_id", "n", "\n", "\"", "`", "[", "]", "$1", "?",
        ]), 0..24).prop_map(|t| t.join(" ")),
        (1usize..300).prop_map(|d| format!("SELECT {}1{}", "(".repeat(d), ")".repeat(d))),
    ]) {
        let _ = check_read_only(&sql);
        match plan_of(&sql) {
            Ok(plan) => {
                for admin in ADMIN_TABLES {
                    prop_assert!(!plan.contains(admin), "{} planned {}", sql, plan);
                }
                for write in ["Dml:", "CopyTo:", "CreateMemoryTable", "DropTable", "CreateExternalTable"] {
                    prop_assert!(!plan.contains(write), "{} planned {}", sql, plan);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn fuzz_admin_tables_are_never_offered() {
    for admin in ADMIN_TABLES {
        assert!(!allowed().contains(admin), "{admin}");
    }
}

/// Found by `fuzz_writes_are_refused_as_not_read_only` and
/// `fuzz_writes_disguised_as_reads_are_refused`: `SELECT .. INTO` parses as a query, so the
/// guard let it through (refused later as a missing table, or, inside a CTE, planned without
/// its `INTO`).
#[test]
fn fuzz_regression_select_into_is_not_read_only() {
    for sql in [
        "SELECT * INTO x FROM dead_letter_log",
        "SELECT * INTO x FROM alerts",
        "WITH w AS (SELECT * INTO x FROM alerts) SELECT 1",
        "SELECT 1 UNION SELECT n INTO x FROM alerts",
        "SELECT * FROM (SELECT * INTO x FROM alerts) AS w",
    ] {
        assert!(
            matches!(check_read_only(sql), Err(QueryError::NotReadOnly(_))),
            "{sql}"
        );
    }
}
