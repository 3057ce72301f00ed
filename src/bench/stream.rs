//! `muster bench stream`: how fast a committed update reaches N partners watching one event,
//! and what each watcher costs the API. One `muster api` process (a child of the bench, so its
//! CPU is its own) serves N subscribers of `GET /api/partner/stream`; then, as the baseline,
//! the same process serves N clients polling `GET /api/partner/events` every `--poll-every`.
//! An update is what a projection commits: the event's realtime row and its change-log row in
//! one transaction. Latency runs from just before that commit to the moment each client holds
//! the new number; CPU is the API process's user + system time while the updates flow.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::Shutdown;
use muster_runtime::projection::changes;
use muster_schemas::read_models::ChangeKind;
use tokio::sync::watch;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Clients on each side.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Updates committed on each side.
    #[arg(long, default_value_t = 20)]
    updates: usize,
    /// Milliseconds between two updates.
    #[arg(long, default_value_t = 500)]
    every_ms: u64,
    /// Milliseconds between two requests of a polling client (the baseline).
    #[arg(long, default_value_t = 1_000)]
    poll_every_ms: u64,
}

/// Update `i` of a side sets the number of people inside to its mark + `i`: a value nothing
/// else shows. The baseline's mark is above every number the stream's side set, so its
/// clients do not take the stream side's last update for one of theirs.
const MARK: i64 = 7_000_000;

/// The `muster api` child, killed when dropped.
struct ApiProcess {
    child: Child,
    base: String,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ApiProcess {
    /// Starts `muster api` with this command line's configuration (what came before `bench`),
    /// the admin token `admin` and rate limits out of the way, and waits until it is ready.
    async fn start(admin: &str) -> anyhow::Result<Self> {
        let free = || -> anyhow::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (port, ops) = (free()?, free()?);
        let before_bench: Vec<String> = std::env::args()
            .skip(1)
            .take_while(|a| a != "bench")
            .collect();
        let child = Command::new(std::env::current_exe()?)
            .args(&before_bench)
            .arg("api")
            .env("MUSTER_API_ADDR", format!("127.0.0.1:{port}"))
            .env("MUSTER__OPS__ADDR", format!("127.0.0.1:{ops}"))
            .env("MUSTER_ADMIN_TOKEN", admin)
            // As the bench itself: its throwaway data needs no secret key of its own.
            .env("MUSTER_DEVELOPMENT", "true")
            .env("MUSTER__API__RATE_LIMITS__PARTNER_PER_SECOND", "1000000000")
            .env("MUSTER__API__RATE_LIMITS__PARTNER_BURST", "1000000000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting muster api")?;
        let api = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http.get(format!("{}/readyz", api.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(api);
            }
            anyhow::ensure!(Instant::now() < deadline, "muster api did not get ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Seconds of CPU (user + system) the process has used so far.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        super::cpu_seconds(self.child.id())
    }
}

/// When each client first held each update (`None`: never).
type Seen = Vec<Vec<Option<Instant>>>;

/// One side of the comparison.
struct Side {
    /// Commit-to-client latencies of every (client, update) seen, sorted.
    latencies: Vec<Duration>,
    missed: usize,
    cpu: f64,
}

impl Side {
    fn new(sent: &[Instant], seen: Seen, cpu: f64) -> Self {
        let mut latencies = Vec::new();
        let mut missed = 0;
        for client in seen {
            for (i, at) in client.into_iter().enumerate() {
                match at {
                    Some(at) => latencies.push(at.saturating_duration_since(sent[i])),
                    None => missed += 1,
                }
            }
        }
        latencies.sort_unstable();
        Self {
            latencies,
            missed,
            cpu,
        }
    }

    fn percentile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]
    }
}

/// What the clients of a side share: how many are ready, when to stop, and the side's mark.
#[derive(Clone)]
struct Shared {
    ready: Arc<AtomicUsize>,
    done: watch::Receiver<bool>,
    /// This side's mark (see [`MARK`]).
    mark: i64,
}

/// Marks every update up to the one `inside` says as seen now.
fn saw(seen: &mut [Option<Instant>], inside: i64, mark: i64) {
    let Ok(upto) = usize::try_from(inside - mark) else {
        return;
    };
    let now = Instant::now();
    for s in seen.iter_mut().take(upto + 1).filter(|s| s.is_none()) {
        *s = Some(now);
    }
}

/// The number of people inside in an SSE `data` line or a JSON body, if it carries a mark.
fn inside_of(text: &str, mark: i64) -> Option<i64> {
    let needle = "\"currentAttendees\":";
    let mut best = None;
    for (at, _) in text.match_indices(needle) {
        let digits: String = text[at + needle.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<i64>()
            && n >= mark
        {
            best = best.max(Some(n));
        }
    }
    best
}

/// A stream subscriber: counts itself ready at the stream's `ready` event, then notes each
/// update as its change arrives, until the updates are done.
async fn subscribe(
    http: reqwest::Client,
    url: String,
    key: String,
    updates: usize,
    shared: Shared,
) -> anyhow::Result<Vec<Option<Instant>>> {
    let mut seen = vec![None; updates];
    let mut res = http
        .get(&url)
        .header("x-api-key", &key)
        .header("accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    let mut done = shared.done.clone();
    let mut buf = String::new();
    let mut counted = false;
    loop {
        let chunk = tokio::select! {
            c = res.chunk() => c?,
            _ = done.wait_for(|d| *d) => break,
        };
        let Some(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            if !counted && (line.starts_with("event: ready") || line.starts_with("event:ready")) {
                counted = true;
                shared.ready.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(n) = line
                .strip_prefix("data:")
                .and_then(|d| inside_of(d, shared.mark))
            {
                saw(&mut seen, n, shared.mark);
            }
        }
        if seen.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(seen)
}

/// A polling client: asks every `every` (starting at a random phase) until the updates are
/// done.
async fn poll(
    http: reqwest::Client,
    url: String,
    key: String,
    updates: usize,
    every: Duration,
    shared: Shared,
) -> anyhow::Result<Vec<Option<Instant>>> {
    let mut seen = vec![None; updates];
    let phase = every.mul_f64(rand::random::<f64>());
    tokio::time::sleep(phase).await;
    shared.ready.fetch_add(1, Ordering::SeqCst);
    let mut tick = tokio::time::interval(every);
    let mut done = shared.done.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.wait_for(|d| *d) => break,
        }
        let body = http
            .get(&url)
            .header("x-api-key", &key)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        if let Some(n) = inside_of(&body, shared.mark) {
            saw(&mut seen, n, shared.mark);
        }
        if seen.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(seen)
}

/// Commits the updates `every` apart once every client is ready; returns when each was sent.
async fn update(
    pool: &deadpool_postgres::Pool,
    event: &str,
    args: &Args,
    shared: &Shared,
) -> anyhow::Result<Vec<Instant>> {
    let (ready, mark) = (&shared.ready, shared.mark);
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::SeqCst) < args.subscribers {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {} clients got ready",
            ready.load(Ordering::SeqCst),
            args.subscribers
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = pool.get().await?;
    let mut sent = Vec::with_capacity(args.updates);
    for i in 0..args.updates {
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE event_realtime SET current_attendees = $2, observed_at = now(),
                fetched_at = now() WHERE event_id = $1",
            &[&event, &(mark + i as i64)],
        )
        .await?;
        changes::record(&tx, ChangeKind::Realtime, [event]).await?;
        sent.push(Instant::now());
        tx.commit().await?;
        tokio::time::sleep(Duration::from_millis(args.every_ms)).await;
    }
    Ok(sent)
}

/// Runs one side: starts the clients (`client(i, shared)`), commits the updates, gives the
/// clients five seconds more, and collects what each saw.
async fn side<F, Fut>(
    api: &ApiProcess,
    pool: &deadpool_postgres::Pool,
    event: &str,
    args: &Args,
    mark: i64,
    client: F,
) -> anyhow::Result<Side>
where
    F: Fn(Shared) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Option<Instant>>>> + Send + 'static,
{
    let (stop, done) = watch::channel(false);
    let shared = Shared {
        ready: Arc::new(AtomicUsize::new(0)),
        done,
        mark,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.subscribers {
        tasks.spawn(client(shared.clone()));
    }
    let cpu_before = api.cpu_seconds()?;
    let sent = update(pool, event, args, &shared).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = api.cpu_seconds()? - cpu_before;
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(args.subscribers);
    while let Some(r) = tasks.join_next().await {
        seen.push(r.context("a client task")??);
    }
    Ok(Side::new(&sent, seen, cpu))
}

pub async fn run(args: Args, cfg: Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.subscribers > 0 && args.updates > 0,
        "nothing to measure"
    );
    let env = cfg.env(Shutdown::new())?;
    let pool = env.pool.clone();
    crate::roles::migrate(&pool, &cfg.processors).await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let event = format!("bench-stream-{run}");
    super::api::seed(&pool, &event)
        .await
        .context("seeding the projections")?;
    let admin = format!("bench-{}", muster_runtime::unique_suffix().repeat(2));
    let api = ApiProcess::start(&admin).await?;
    let key =
        super::api::partner_key(&api.base, &admin, "partner", std::slice::from_ref(&event)).await?;
    // One connection per client, as browsers and partners would hold.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let n = args.subscribers;

    eprintln!("stream: {n} SSE subscribers, {} updates ...", args.updates);
    let url = format!("{}/api/partner/stream", api.base);
    let sse = side(&api, &pool, &event, &args, MARK, |shared| {
        subscribe(http.clone(), url.clone(), key.clone(), args.updates, shared)
    })
    .await?;

    let every = Duration::from_millis(args.poll_every_ms);
    eprintln!(
        "baseline: {n} clients polling every {every:?}, {} updates ...",
        args.updates
    );
    let url = format!("{}/api/partner/events", api.base);
    let polled = side(&api, &pool, &event, &args, 2 * MARK, |shared| {
        poll(
            http.clone(),
            url.clone(),
            key.clone(),
            args.updates,
            every,
            shared,
        )
    })
    .await?;
    drop(api);

    super::api::unseed(&pool, &event).await?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let window = (args.updates as u64 * args.every_ms) as f64 / 1e3 + 5.0;
    println!(
        "{n} clients, {} updates {} ms apart, one muster api process, loopback",
        args.updates, args.every_ms
    );
    for (name, s) in [("SSE stream", &sse), ("polling (baseline)", &polled)] {
        println!(
            "  {name:<20} p50 {:>7.1} ms   p99 {:>7.1} ms   missed {:>5}   API CPU {:>6.2} s \
             = {:>6.3} ms per subscriber per second",
            ms(s.percentile(0.50)),
            ms(s.percentile(0.99)),
            s.missed,
            s.cpu,
            1e3 * s.cpu / n as f64 / window
        );
    }
    println!(
        "  stream / polling: p99 {:.2}x, CPU {:.2}x",
        sse.percentile(0.99).as_secs_f64() / polled.percentile(0.99).as_secs_f64().max(1e-9),
        sse.cpu / polled.cpu.max(1e-9)
    );
    anyhow::ensure!(
        sse.missed == 0,
        "{} stream updates never arrived",
        sse.missed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_read_from_stream_data_and_bodies() {
        let data = r#"{"id":9,"event":{"currentAttendees":7000003,"capacity":5000}}"#;
        assert_eq!(inside_of(data, MARK), Some(MARK + 3));
        assert_eq!(inside_of(r#"{"currentAttendees":2500}"#, MARK), None);
        assert_eq!(inside_of(data, 2 * MARK), None, "the other side's number");
        let mut seen = vec![None; 5];
        saw(&mut seen, MARK + 2, MARK);
        assert_eq!(seen.iter().filter(|s| s.is_some()).count(), 3);
        saw(&mut seen, MARK - 1, MARK);
        assert!(seen[3].is_none());
    }
}
