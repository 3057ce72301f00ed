//! Helpers for end-to-end tests: the services' addresses, free ports, worker processes.

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
    /// The services, with `database` the running test module's own database.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests with scripts/test.sh, which starts Kafka, the registry and PostgreSQL")
            })
        };
        Self {
            brokers: var("MUSTER_KAFKA_BROKERS"),
            registry: var("MUSTER_SCHEMA_REGISTRY_URL"),
            database: module_database(&var("MUSTER_DATABASE_URL")),
        }
    }
}

/// `<base>_<module>` for the running test's module (`api`, `projections`, …), created on first
/// use. Modules used to be separate binaries run one after another on one database; now they run
/// side by side, and some of them replace whole tables (`muster replay`) or lease every row of
/// `services`, so each keeps to its own database. `scripts/test.sh` drops them before a run.
fn module_database(base: &str) -> String {
    static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    static FIRST_MODULE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // libtest names each test's thread after the test (`api::keys_…`); helper tasks on a
    // runtime's other threads fall back to the module this process saw first.
    let thread = std::thread::current();
    let module = match thread.name().and_then(|n| n.split_once("::")) {
        Some((module, _)) => {
            FIRST_MODULE.get_or_init(|| module.to_owned());
            module.to_owned()
        }
        None => FIRST_MODULE.get().cloned().unwrap_or_default(),
    };
    if module.is_empty() {
        return base.to_owned();
    }
    let (server, name) = base
        .rsplit_once('/')
        .expect("MUSTER_DATABASE_URL names a database");
    let name = format!("{}_{module}", name.split('?').next().unwrap_or(name));
    let mut created = CREATED.lock().unwrap();
    if !created.contains(&name) {
        let out = Command::new("psql")
            .args([
                &format!("{server}/postgres"),
                "-qc",
                &format!("CREATE DATABASE {name}"),
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

/// `muster` as a subprocess, with this test module's database.
pub fn muster() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muster"));
    cmd.env("MUSTER_DATABASE_URL", Services::from_env().database);
    cmd
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
        let mut cmd = muster();
        cmd.args(args)
            .env("MUSTER_LOG", "info,rdkafka=warn")
            // The built-in development key (a test may set MUSTER_SECRET_KEY or turn it off).
            .env("MUSTER_DEVELOPMENT", "true")
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

    /// The process's resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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

/// Produces `records` as one burst (all queued, then awaited), each to its topic keyed by its
/// event, and returns where each landed (partition, offset), in order.
pub async fn send_burst<R: muster_schemas::TopicRecord>(
    p: &rdkafka::producer::FutureProducer,
    codec: &muster_schemas::Codec,
    records: &[R],
) -> Vec<(i32, i64)> {
    let mut queued = Vec::with_capacity(records.len());
    for r in records {
        let payload = codec.encode(r).await.unwrap();
        let record = rdkafka::producer::FutureRecord::to(R::TOPIC)
            .key(r.key().unwrap())
            .payload(&payload);
        queued.push(p.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    let mut at = Vec::with_capacity(queued.len());
    for d in queued {
        let d = d.await.unwrap().map_err(|(e, _)| e).unwrap();
        at.push((d.partition, d.offset));
    }
    at
}

/// The dead letters on `muster.dead-letter.v1` that match `keep`, from the first record
/// produced at or after `since_ms` to the topic's end as it is when called: a dead letter
/// published before the call is counted exactly as often as it was produced.
pub async fn dead_letters_since(
    s: &Services,
    codec: &muster_schemas::Codec,
    since_ms: i64,
    keep: impl Fn(&muster_schemas::DeadLetter) -> bool,
) -> Vec<muster_schemas::DeadLetter> {
    use muster_schemas::{DeadLetter, TopicRecord};
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    let c: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", format!("dead-letter-reader-{}", run_id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let meta = c
        .fetch_metadata(Some(DeadLetter::TOPIC), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in meta.topics()[0].partitions() {
        tpl.add_partition_offset(DeadLetter::TOPIC, p.id(), Offset::Offset(since_ms))
            .unwrap();
    }
    let at = c.offsets_for_times(tpl, Duration::from_secs(10)).unwrap();
    let mut start = TopicPartitionList::new();
    let mut ends = std::collections::BTreeMap::new();
    for e in at.elements() {
        let (_, high) = c
            .fetch_watermarks(DeadLetter::TOPIC, e.partition(), Duration::from_secs(10))
            .unwrap();
        let from = match e.offset() {
            Offset::Offset(o) => o,
            _ => high,
        };
        start
            .add_partition_offset(DeadLetter::TOPIC, e.partition(), Offset::Offset(from))
            .unwrap();
        ends.insert(e.partition(), (from, high));
    }
    c.assign(&start).unwrap();
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let position = c.position().unwrap();
        let done = ends.iter().all(|(p, (from, high))| {
            let at = match position
                .find_partition(DeadLetter::TOPIC, *p)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o,
                _ => *from,
            };
            at >= *high
        });
        if done {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "reading {} to its end took over a minute",
            DeadLetter::TOPIC
        );
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), c.recv()).await else {
            continue;
        };
        let Some(payload) = m.payload() else { continue };
        if let Ok(dl) = codec.decode::<DeadLetter>(payload).await
            && keep(&dl)
        {
            found.push(dl);
        }
    }
}

/// A topic config's value on the broker (e.g. `retention.ms`), as Kafka describes it.
pub async fn topic_config(s: &Services, topic: &str, key: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap();
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap()
        .pop()?
        .ok()?;
    described.get(key)?.value.clone()
}

/// A TCP forwarder on loopback in front of a real service, that a test can cut and restore:
/// the service "goes down" for the process behind the proxy only, not for other tests.
pub struct FaultProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl FaultProxy {
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (target, up2, conns2) = (target.to_owned(), up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection closed at once
                }
                let target = target.clone();
                conns2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self { port, up, conns }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The `muster_projection_restarts_total` series of the worker whose ops endpoint is on
/// `port` that are not zero: a projection that met a bad record must not have restarted.
pub async fn projection_restarts(port: u16) -> Vec<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("muster_projection_restarts_total") && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect()
}

/// Waits for the `dead_letters` rows of the source record at `topic`/`at` (partition, offset):
/// `count` of them (one per refusing stage), all published. Columns: stage, reason, event_id,
/// payload; ordered by stage.
pub async fn published_dead_letters(
    client: &tokio_postgres::Client,
    topic: &str,
    at: (i32, i64),
    count: usize,
) -> Vec<tokio_postgres::Row> {
    wait_for(
        "the dead letters recorded and published",
        Duration::from_secs(60),
        || async move {
            let rows = client
                .query(
                    "SELECT stage, reason, event_id, payload, published_at IS NOT NULL
                     FROM dead_letters WHERE source_topic = $1 AND source_partition = $2
                       AND source_offset = $3 ORDER BY stage",
                    &[&topic, &at.0, &at.1],
                )
                .await
                .unwrap();
            (rows.len() == count && rows.iter().all(|r| r.get::<_, bool>(4))).then_some(rows)
        },
    )
    .await
}
