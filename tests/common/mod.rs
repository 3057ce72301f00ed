//! Helpers for end-to-end tests: the services' addresses, free ports, worker processes.

#![allow(dead_code)]

pub mod stack;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real services' addresses, from the environment `scripts/test.sh` sets. Missing ones
/// fail the test: an end-to-end test that silently skips proves nothing.
pub struct Services {
    pub brokers: String,
    pub registry: String,
    pub database: String,
}

impl Services {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests with scripts/test.sh, which starts Kafka, the registry and PostgreSQL")
            })
        };
        Self {
            brokers: var("MUSTER_KAFKA_BROKERS"),
            registry: var("MUSTER_SCHEMA_REGISTRY_URL"),
            database: var("MUSTER_DATABASE_URL"),
        }
    }
}

/// A short id unique to this test run, for event ids and consumer groups.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

pub fn scratch_dir(run: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("muster-test-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `muster` subprocess, killed if the test ends without stopping it.
pub struct Worker {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Worker {
    pub fn start(name: &str, args: &[&str], env: &[(&str, String)], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_muster"));
        cmd.args(args)
            .env("MUSTER_LOG", "info,rdkafka=warn")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting muster {name}: {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "muster {} exited with {status}:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "muster {} did not stop within {within:?} of SIGTERM:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

/// Forgets the services whose event ids start with `prefix`, so later runs' ingest processes do
/// not poll simulators that are gone.
pub async fn forget_services(database: &str, prefix: &str) {
    let (client, conn) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "DELETE FROM services WHERE event_id LIKE $1 || '%'",
            &[&prefix],
        )
        .await
        .unwrap();
}

pub async fn get_json(url: &str) -> Option<serde_json::Value> {
    let r = reqwest::get(url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// An idempotent producer to the test broker.
pub fn producer(s: &Services) -> rdkafka::producer::FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Encodes `r` through the registry and produces it to its topic, keyed by its event.
pub async fn send<R: muster_schemas::TopicRecord>(
    p: &rdkafka::producer::FutureProducer,
    codec: &muster_schemas::Codec,
    r: &R,
) {
    let payload = codec.encode(r).await.unwrap();
    p.send(
        rdkafka::producer::FutureRecord::to(R::TOPIC)
            .key(r.key().unwrap())
            .payload(&payload),
        Duration::from_secs(30),
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap();
}
