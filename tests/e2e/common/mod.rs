//! Helpers for end-to-end tests: the services' addresses, free ports, worker processes, and
//! the ways tests talk to the broker, PostgreSQL and the API.

pub mod api;
pub mod browser;
pub mod db;
mod faults;
pub mod hooks;
pub mod kafka;
pub mod process;
pub mod records;
pub mod sse;
pub mod stack;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use muster_schemas::TopicRecord;
use muster_schemas::topics::Topics;

pub use faults::FaultProxy;
pub use kafka::{producer, send};
pub use process::Worker;

/// The real services' addresses, from the environment `scripts/test.sh` sets. Missing ones
/// fail the test: an end-to-end test that silently skips proves nothing.
pub struct Services {
    pub brokers: String,
    pub registry: String,
    pub database: String,
}

impl Services {
    /// The services, with `database` the running test's own database.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests with scripts/test.sh, which starts Kafka, the registry and PostgreSQL")
            })
        };
        Self {
            brokers: var("MUSTER_KAFKA_BROKERS"),
            registry: var("MUSTER_SCHEMA_REGISTRY_URL"),
            database: test_database(&var("MUSTER_DATABASE_URL")),
        }
    }
}

/// The running test's name (`module::test`). libtest names each test's thread after its test;
/// helper tasks on a runtime's other threads fall back to the first test this process saw
/// (nextest runs each test in a process of its own).
fn current_test() -> Option<String> {
    static FIRST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    match std::thread::current().name().filter(|n| n.contains("::")) {
        Some(name) => {
            FIRST.get_or_init(|| name.to_owned());
            Some(name.to_owned())
        }
        None => FIRST.get().cloned(),
    }
}

/// An id of the running test (8 hex digits), the same for all its calls, new in every run.
fn test_id() -> String {
    static BY_TEST: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let test = current_test().unwrap_or_default();
    let mut known = BY_TEST.lock().unwrap();
    if let Some((_, id)) = known.iter().find(|(name, _)| *name == test) {
        return id.clone();
    }
    let id = run_id();
    known.push((test, id.clone()));
    id
}

/// The running test's topics: a prefix of its own (`t<test id>.`), so no test reads another's
/// records, even with other tests' workers on the same cluster. Workers started by the test get
/// it as `kafka.topic_prefix` ([`muster`]).
pub fn topics() -> Topics {
    Topics::new(&format!("t{}.", test_id()))
}

/// The running test's name on the cluster of `R`'s topic.
pub fn topic<R: TopicRecord>() -> String {
    topics().of::<R>()
}

/// `<base>_t<test id>`: the running test's own database, created and migrated on first use.
/// Tests share no rows: some replace whole tables (`muster replay`), every ingest process
/// leases every row of `services`, and every dead-letter publisher publishes every row of
/// `dead_letters` to its own topics. `scripts/test.sh` drops them before a run.
fn test_database(base: &str) -> String {
    static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if current_test().is_none() {
        return base.to_owned();
    }
    let (server, name) = base
        .rsplit_once('/')
        .expect("MUSTER_DATABASE_URL names a database");
    let name = format!("{}_t{}", name.split('?').next().unwrap_or(name), test_id());
    let mut created = CREATED.lock().unwrap();
    if !created.contains(&name) {
        let out = Command::new("psql")
            .args([
                &format!("{server}/postgres"),
                "-qc",
                // A UTF-8 ctype whatever the cluster's default: search needs it (pg_trgm).
                &format!(
                    "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"
                ),
            ])
            .output()
            .expect("running psql to create the test module's database");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("already exists"),
            "creating database {name}: {err}"
        );
        // Migrated as `muster` does it (under its advisory lock, so tests starting at once
        // are safe), since tests seed read models before any worker has started.
        let url = format!("{server}/{name}");
        let out = Command::new(env!("CARGO_BIN_EXE_muster"))
            .arg("migrate")
            .env("MUSTER_DATABASE_URL", &url)
            .env("MUSTER_DEVELOPMENT", "true")
            .output()
            .expect("running muster migrate");
        assert!(
            out.status.success(),
            "muster migrate on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        created.push(name.clone());
    }
    format!("{server}/{name}")
}

/// `muster` as a subprocess, with this test's database and topics.
pub fn muster() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muster"));
    cmd.env("MUSTER_DATABASE_URL", Services::from_env().database)
        .env("MUSTER__KAFKA__TOPIC_PREFIX", topics().prefix());
    cmd
}

/// A short id unique to this test run, for event ids and consumer groups.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// A free loopback port for a worker to listen on, below Linux's ephemeral range (32768 and
/// up): a port the kernel handed out only to be closed can be given at once to one of the many
/// outgoing Kafka and PostgreSQL connections, and the worker then fails to bind it.
pub fn free_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn scratch_dir(run: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("muster-test-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What most tests start with: the services, an id for this run (for event ids and consumer
/// groups), a scratch folder for workers' logs, and the registry's codec.
pub struct Run {
    pub services: Services,
    pub id: String,
    pub dir: PathBuf,
    pub codec: muster_schemas::Codec,
}

impl Run {
    pub fn begin() -> Self {
        let services = Services::from_env();
        let id = run_id();
        let dir = scratch_dir(&id);
        let codec = muster_schemas::Codec::new(&services.registry)
            .unwrap()
            .with_topics(topics());
        Self {
            services,
            id,
            dir,
            codec,
        }
    }

    /// (services, id, scratch folder, codec), for a test that names them itself.
    pub fn parts(self) -> (Services, String, PathBuf, muster_schemas::Codec) {
        (self.services, self.id, self.dir, self.codec)
    }
}

/// The settings every worker of a test gets: consumer groups of its own (`group` is their
/// prefix) that start at the end of the topics other runs filled, and its ops endpoint on
/// `ops`. A setting pushed after these replaces them: a process keeps the last value of a name.
pub fn worker_env(group: &str, ops: u16) -> Vec<(&'static str, String)> {
    vec![
        ("MUSTER__KAFKA__GROUP_PREFIX", group.to_owned()),
        ("MUSTER__KAFKA__AUTO_OFFSET_RESET", "latest".to_owned()),
        ("MUSTER__OPS__ADDR", format!("127.0.0.1:{ops}")),
    ]
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The JSON answer of a GET, if it succeeded.
pub async fn get_json(url: &str) -> Option<serde_json::Value> {
    let r = reqwest::get(url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The Prometheus metrics a worker or the API serves under `base`.
pub async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The `muster_projection_restarts_total` series of the worker whose ops endpoint is on
/// `port` that are not zero: a projection that met a bad record must not have restarted.
pub async fn projection_restarts(port: u16) -> Vec<String> {
    scrape(&format!("http://127.0.0.1:{port}"))
        .await
        .lines()
        .filter(|l| l.starts_with("muster_projection_restarts_total") && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect()
}
