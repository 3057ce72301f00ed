//! The read-only role for BI tools (`scripts/bi-role.sql`), applied with psql as the cluster's
//! superuser the way an operator would: the role reads every projection table and the
//! `insight_*` read models, cannot read partners, keys, services, webhook endpoints or the
//! bookkeeping tables, is refused every write and DDL even after turning its read-only default
//! off, and still reads a projection after `muster replay` swapped new tables in.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::process::{run_ok, stdout_of};
use common::{Services, run_id};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const SCRIPT: &str = include_str!("../../scripts/bi-role.sql");

/// Where the muster database is: (name, port), from `MUSTER_DATABASE_URL`.
fn database(s: &Services) -> (String, u16) {
    let cfg: tokio_postgres::Config = s.database.parse().unwrap();
    (
        cfg.get_dbname().unwrap().to_owned(),
        cfg.get_ports().first().copied().unwrap_or(5432),
    )
}

/// psql as the `postgres` superuser over the local socket, as `scripts/services.sh` runs it
/// (roles are created by an administrator, not by the `muster` role).
fn admin_psql(db: &str, port: u16, args: &[&str], stdin: &str) -> Output {
    let psql = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("{}/psql", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "psql".to_owned());
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "-u", "postgres"]);
        c
    };
    let port = port.to_string();
    cmd.arg(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "/var/run/postgresql"])
        .args(["-p", &port, "-d", db])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running psql as postgres");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn apply_script(db: &str, port: u16, vars: &[(&str, &str)]) -> String {
    let mut args = Vec::new();
    for (k, v) in vars {
        args.push("-v".to_owned());
        args.push(format!("{k}={v}"));
    }
    args.push("-f".to_owned());
    args.push("-".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stdout_of(admin_psql(db, port, &args, SCRIPT), "scripts/bi-role.sql")
}

/// Drops the test's role (and the privileges that keep it alive) however the test ends.
struct Cleanup {
    db: String,
    port: u16,
    role: String,
    table: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let sql = format!(
            "DROP TABLE IF EXISTS public.\"{table}\";
             DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\";",
            table = self.table,
            role = self.role,
        );
        let out = admin_psql(&self.db, self.port, &["-f", "-"], &sql);
        if !out.status.success() {
            eprintln!(
                "dropping role {}: {}",
                self.role,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

async fn connect(url: &str, login: Option<(&str, &str)>) -> Client {
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    if let Some((user, password)) = login {
        cfg.user(user).password(password);
    }
    let (client, conn) = cfg.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Runs `sql`, which must fail with one of `codes`.
async fn refused(client: &Client, sql: &str, codes: &[SqlState]) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("the BI role was allowed to run {sql}"),
        Err(e) => assert!(
            e.code().is_some_and(|c| codes.contains(c)),
            "{sql}: expected {codes:?}, got {e:?}"
        ),
    }
}

async fn count(client: &Client, sql: &str, event: &str) -> i64 {
    client.query_one(sql, &[&event]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_bi_role_reads_projections_only_and_never_writes() {
    let s = Services::from_env();
    let run = run_id();
    let (db, port) = database(&s);
    let role = format!("muster_bi_test_{run}");
    let password = format!("bi-{}", uuid::Uuid::new_v4().simple());
    let insight = format!("insight_bitest_{run}");
    let _cleanup = Cleanup {
        db: db.clone(),
        port,
        role: role.clone(),
        table: insight.clone(),
    };
    run_ok(&["migrate"], &[]);

    // Rows of our own in two projections and in an analytics read model added after the role.
    let owner = connect(&s.database, None).await;
    let event = format!("bi{run}");
    owner
        .execute(
            "INSERT INTO event_catalogue (event_id, service_name, name, event_type, removed,
                version_at) VALUES ($1, 'test', 'BI expo', 'exhibition', false, now())",
            &[&event],
        )
        .await
        .unwrap();
    owner
        .execute(
            "INSERT INTO event_series_hour (event_id, bucket, samples, attendees_sum,
                attendees_max, attendees_min, registered_max, rate_sum, last_at, last_attendees)
             VALUES ($1, '2026-11-24 09:00+00', 2, 200, 120, 80, 1000, 0.2,
                '2026-11-24 09:59+00', 120)",
            &[&event],
        )
        .await
        .unwrap();

    // Applied twice: the second run (no password: the first one stays) changes nothing.
    let first = apply_script(
        &db,
        port,
        &[
            ("role", &role),
            ("password", &password),
            ("statement_timeout", "2min"),
        ],
    );
    assert!(first.contains("event_catalogue"), "{first}");
    owner
        .batch_execute(&format!(
            "CREATE TABLE public.\"{insight}\" (event_id text, score int);
             INSERT INTO public.\"{insight}\" VALUES ('{event}', 7)"
        ))
        .await
        .unwrap();
    let second = apply_script(&db, port, &[("role", &role)]);
    assert!(second.contains(&insight), "{second}");

    let bi = connect(&s.database, Some((&role, &password))).await;
    let setting = |name: &'static str| {
        let bi = &bi;
        async move {
            bi.query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(setting("default_transaction_read_only").await, "on");
    assert_eq!(setting("statement_timeout").await, "2min");

    // It reads the projections, every one of them, and the insight table.
    let catalogue = "SELECT count(*) FROM event_catalogue WHERE event_id = $1";
    let series = "SELECT count(*) FROM event_series_hour WHERE event_id = $1";
    assert_eq!(count(&bi, catalogue, &event).await, 1);
    assert_eq!(count(&bi, series, &event).await, 1);
    let score: i32 = bi
        .query_one(&format!("SELECT score FROM \"{insight}\""), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(score, 7);
    // Save the admin's own (the dead-letter log: upstreams' raw bodies), refused below.
    let admin_only = muster_schemas::read_models::ADMIN_TABLES;
    // The declared tables too (the built-in processors declare some): listed from their
    // catalogue. Loading them plans the SQL, which blocks: off this single-threaded runtime.
    let all = std::thread::spawn(|| muster_projections::all(&Default::default()).unwrap())
        .join()
        .unwrap();
    for p in all {
        for table in p.tables().iter().filter(|t| !admin_only.contains(*t)) {
            bi.query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap_or_else(|e| {
                    panic!("the BI role cannot read {table} (add it to scripts/bi-role.sql): {e}")
                });
        }
    }

    // Nothing that holds secrets, partner data or bookkeeping.
    for table in [
        "partners",
        "api_keys",
        "services",
        "service_status",
        "webhook_endpoints",
        "webhook_deliveries",
        "webhook_attempts",
        "webhook_sequences",
        "muster_migrations",
        "projection_offsets",
    ]
    .into_iter()
    .chain(admin_only.iter().copied())
    {
        refused(
            &bi,
            &format!("SELECT * FROM {table} LIMIT 1"),
            &[SqlState::INSUFFICIENT_PRIVILEGE],
        )
        .await;
    }

    // No write or DDL, first in its read-only default, then with that default turned off (which
    // any session may do): the privileges refuse them.
    let writes = [
        format!(
            "INSERT INTO event_catalogue (event_id, service_name, name, event_type, removed,
                version_at) VALUES ('{event}x', 't', 'n', 'e', false, now())"
        ),
        format!("UPDATE event_catalogue SET name = 'changed' WHERE event_id = '{event}'"),
        format!("DELETE FROM event_series_hour WHERE event_id = '{event}'"),
        "TRUNCATE event_series_hour".to_owned(),
        "DROP TABLE event_catalogue".to_owned(),
        "ALTER TABLE event_catalogue ADD COLUMN x int".to_owned(),
        "CREATE TABLE public.bi_was_here (x int)".to_owned(),
        "CREATE VIEW public.bi_was_here AS SELECT 1".to_owned(),
        format!("DELETE FROM \"{insight}\""),
    ];
    for sql in &writes {
        refused(
            &bi,
            sql,
            &[
                SqlState::READ_ONLY_SQL_TRANSACTION,
                SqlState::INSUFFICIENT_PRIVILEGE,
            ],
        )
        .await;
    }
    bi.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    for sql in &writes {
        refused(&bi, sql, &[SqlState::INSUFFICIENT_PRIVILEGE]).await;
    }
    assert_eq!(count(&owner, catalogue, &event).await, 1);
    assert_eq!(count(&owner, series, &event).await, 1);
    let name: String = owner
        .query_one(
            "SELECT name FROM event_catalogue WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "BI expo");
    let n = count(
        &owner,
        &format!("SELECT count(*) FROM \"{insight}\" WHERE event_id = $1"),
        &event,
    )
    .await;
    assert_eq!(n, 1);

    // A replay swaps a rebuilt event_catalogue in (a new table: its oid changes), which the
    // role reads without the script being run again.
    let oid = "SELECT 'public.event_catalogue'::regclass::oid";
    let before: u32 = owner.query_one(oid, &[]).await.unwrap().get(0);
    let replayed = run_ok(&["replay", "event_catalogue", "--accept-truncated"], &[]);
    assert!(replayed.contains("swapped in"), "{replayed}");
    let after: u32 = owner.query_one(oid, &[]).await.unwrap().get(0);
    assert_ne!(before, after, "the replay swapped a new table in");
    let bi = connect(&s.database, Some((&role, &password))).await;
    bi.query_one("SELECT count(*) FROM event_catalogue", &[])
        .await
        .expect("the BI role reads event_catalogue after a replay");
    bi.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    refused(
        &bi,
        "DELETE FROM event_catalogue",
        &[SqlState::INSUFFICIENT_PRIVILEGE],
    )
    .await;
}
