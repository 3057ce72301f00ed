//! `muster simulate`: event-management services on loopback, for demos, tests and benchmarks.
//! Each event answers `GET /events/{id}/health` and `GET /events/{id}/analytics/realtime` (with
//! the auth it was given), and can register itself with muster's admin API and push signed
//! check-ins. What each service served and saw is at `GET /events/{id}/served` and
//! `GET /events/{id}/stats`; `POST /events/{id}/mode` changes how it behaves. Webhook
//! receivers for partners' endpoints are at `/hooks/{name}` (see [`receiver`]).

mod auth;
mod model;
mod push;
mod receiver;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use muster_ingest::service::{EventServiceConfig, SyncSettings};
use muster_runtime::Shutdown;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

pub use model::SimEvent;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Number of simulated events.
    #[arg(long, default_value_t = 5)]
    pub events: usize,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub addr: SocketAddr,
    /// Prefix of the event ids (`<prefix>1`, `<prefix>2`, ...).
    #[arg(long, default_value = "sim-")]
    pub prefix: String,
    /// Length of one simulated event day.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub cycle: Duration,
    /// Poll interval (seconds) written into the services' registrations.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    /// The last N events serve bad bodies: non-JSON and wrong types, alternately.
    #[arg(long, default_value_t = 0)]
    pub malformed: usize,
    /// The N events before those answer HTTP 500.
    #[arg(long, default_value_t = 0)]
    pub failing: usize,
    /// The N events before those answer after 3 s.
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
    /// The N events before those report themselves unhealthy.
    #[arg(long, default_value_t = 0)]
    pub unhealthy: usize,
    /// Authentication the services require: none, api_key, jwt, oauth2, or mixed (by turns).
    #[arg(long, default_value = "none", value_parser = ["none", "api_key", "jwt", "oauth2", "mixed"])]
    pub auth: String,
    /// Write the services' registrations as a muster config file (`[[ingest.services]]`).
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// Base URL muster should use to reach the simulator, when it differs from the listen
    /// address (e.g. `http://simulate:9100` in docker-compose).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Register every service with this muster API (admin API, needs --admin-token)...
    #[arg(long)]
    pub register_with: Option<String>,
    #[arg(long, env = "MUSTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// ...and push signed check-ins to it as people arrive and leave.
    #[arg(long)]
    pub push_checkins: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Healthy,
    Malformed,
    Failing,
    Slow,
    Unhealthy,
    /// Holds every request without answering, longer than any client waits.
    Hang,
}

/// What a service saw, for tests.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Times (epoch ms) of the authorized realtime requests.
    pub realtime: Vec<i64>,
    /// Times (epoch ms) of those that were a collection's first attempt (`x-muster-attempt`
    /// 1 or absent): one per collection, whatever its retries.
    pub collections: Vec<i64>,
    /// The `timestamp`s (epoch ms) of the snapshots answered with a 200: what ingest must
    /// publish exactly once each.
    pub answered: Vec<i64>,
    pub health: u64,
    pub unauthorized: u64,
    pub failed: u64,
}

struct Sim {
    event: SimEvent,
    mode: Mode,
    auth: auth::Required,
    requests: u64,
    served: VecDeque<Value>,
    stats: Stats,
}

type State = Arc<HashMap<String, Mutex<Sim>>>;

const SERVED_KEPT: usize = 1000;

impl Args {
    /// Healthy services without auth, for `muster bench`.
    pub fn for_bench(events: usize, addr: SocketAddr) -> Self {
        Self {
            events,
            addr,
            prefix: "bench-".into(),
            cycle: Duration::from_secs(600),
            interval: 1,
            malformed: 0,
            failing: 0,
            slow: 0,
            unhealthy: 0,
            auth: "none".into(),
            write_config: None,
            public_url: None,
            register_with: None,
            admin_token: None,
            push_checkins: false,
        }
    }

    fn events(&self) -> Vec<SimEvent> {
        (0..self.events)
            .map(|i| SimEvent::nth(&self.prefix, i, self.cycle.as_secs_f64().max(1.0)))
            .collect()
    }

    fn required(&self, events: &[SimEvent]) -> Vec<auth::Required> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| auth::Required::for_event(&self.auth, i, &e.id))
            .collect()
    }

    /// The services' registrations, reached at `base`.
    pub fn registrations(&self, base: &str) -> Vec<EventServiceConfig> {
        let events = self.events();
        events
            .iter()
            .zip(self.required(&events))
            .map(|(e, a)| registration(e, &a, base, self.interval))
            .collect()
    }

    fn mode_of(&self, i: usize) -> Mode {
        let n = self.events;
        let mut edge = n;
        for (count, mode) in [
            (self.malformed, Mode::Malformed),
            (self.failing, Mode::Failing),
            (self.slow, Mode::Slow),
            (self.unhealthy, Mode::Unhealthy),
        ] {
            edge = edge.saturating_sub(count);
            if i >= edge {
                return mode;
            }
        }
        Mode::Healthy
    }
}

pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        args.malformed + args.failing + args.slow + args.unhealthy <= args.events,
        "--malformed + --failing + --slow + --unhealthy exceed --events"
    );
    anyhow::ensure!(
        args.register_with.is_none() || args.admin_token.is_some(),
        "--register-with needs --admin-token (or MUSTER_ADMIN_TOKEN)"
    );
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("simulator cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let base = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let base = base.trim_end_matches('/').to_owned();
    let events = args.events();
    let required = args.required(&events);
    let registrations = args.registrations(&base);
    if let Some(path) = &args.write_config {
        let doc = toml::to_string_pretty(&json!({"ingest": {"services": registrations}}))?;
        let header = format!(
            "# Generated by `muster simulate` for {} simulated services at {base}\n",
            args.events
        );
        std::fs::write(path, header + &doc)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let state: State = Arc::new(
        events
            .iter()
            .cloned()
            .zip(required)
            .enumerate()
            .map(|(i, (event, auth))| {
                let sim = Sim {
                    mode: args.mode_of(i),
                    auth,
                    event,
                    requests: 0,
                    served: VecDeque::new(),
                    stats: Stats::default(),
                };
                (sim.event.id.clone(), Mutex::new(sim))
            })
            .collect(),
    );
    tracing::info!(%addr, events = args.events, auth = %args.auth, "simulator listening");
    let server = tokio::spawn(serve(
        listener,
        state.clone(),
        registrations.clone(),
        shutdown.clone(),
    ));
    if let Some(api) = &args.register_with {
        let token = args.admin_token.clone().unwrap_or_default();
        let secrets = push::register_all(api, &token, &registrations).await?;
        if args.push_checkins {
            tokio::spawn(push::push_checkins(
                api.clone(),
                events,
                secrets,
                shutdown.clone(),
            ));
        }
    }
    server.await.context("the simulator's server failed")?;
    Ok(())
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    registrations: Vec<EventServiceConfig>,
    shutdown: Shutdown,
) {
    let regs = Arc::new(registrations);
    let with_state = {
        let s = state.clone();
        warp::any().map(move || s.clone())
    };
    let services = warp::path!("services")
        .and(warp::get())
        .map(move || warp::reply::json(&*regs));
    let health = warp::path!("events" / String / "health")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(with_state.clone())
        .map(health);
    let realtime = warp::path!("events" / String / "analytics" / "realtime")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(with_state.clone())
        .then(realtime);
    let served = warp::path!("events" / String / "served")
        .and(warp::get())
        .and(with_state.clone())
        .map(|id: String, state: State| with_sim(&state, &id, |sim| json!(sim.served)));
    let stats = warp::path!("events" / String / "stats")
        .and(warp::get())
        .and(with_state.clone())
        .map(|id: String, state: State| with_sim(&state, &id, |sim| json!(sim.stats)));
    let set_mode = warp::path!("events" / String / "mode")
        .and(warp::post())
        .and(warp::body::json())
        .and(with_state.clone())
        .map(|id: String, body: ModeChange, state: State| {
            with_sim(&state, &id, |sim| {
                sim.mode = body.mode;
                json!({"mode": sim.mode})
            })
        });
    let token = warp::path!("oauth" / "token")
        .and(warp::post())
        .and(warp::body::form())
        .and(with_state)
        .map(auth::issue_token);
    let hooks = receiver::Receivers::default().routes();
    warp::serve(
        services
            .or(health)
            .or(realtime)
            .or(served)
            .or(stats)
            .or(set_mode)
            .or(token)
            .or(hooks),
    )
    .incoming(listener)
    .graceful(async move { shutdown.cancelled().await })
    .run()
    .await;
}

#[derive(Deserialize)]
struct ModeChange {
    mode: Mode,
}

fn reply(status: StatusCode, body: Value) -> warp::reply::Response {
    use warp::Reply;
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn with_sim(state: &State, id: &str, f: impl FnOnce(&mut Sim) -> Value) -> warp::reply::Response {
    match state.get(id) {
        Some(sim) => reply(StatusCode::OK, f(&mut sim.lock().expect("poisoned"))),
        None => reply(StatusCode::NOT_FOUND, json!({"error": "no such event"})),
    }
}

fn health(id: String, headers: HeaderMap, state: State) -> warp::reply::Response {
    let Some(sim) = state.get(&id) else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "no such event"}));
    };
    let mut sim = sim.lock().expect("poisoned");
    if !sim.auth.accepts(&headers) {
        sim.stats.unauthorized += 1;
        return reply(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
    }
    sim.stats.health += 1;
    match sim.mode {
        Mode::Unhealthy => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unhealthy", "reason": "gate controllers offline"}),
        ),
        _ => reply(StatusCode::OK, json!({"status": "healthy"})),
    }
}

async fn realtime(id: String, headers: HeaderMap, state: State) -> warp::reply::Response {
    use warp::Reply;
    let Some(sim) = state.get(&id) else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "no such event"}));
    };
    let (mode, body) = {
        let mut sim = sim.lock().expect("poisoned");
        if !sim.auth.accepts(&headers) {
            sim.stats.unauthorized += 1;
            return reply(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
        }
        sim.requests += 1;
        let now = chrono::Utc::now();
        if matches!(sim.mode, Mode::Failing | Mode::Unhealthy | Mode::Hang) {
            sim.stats.failed += 1;
            (sim.mode, Value::Null)
        } else {
            sim.stats.realtime.push(now.timestamp_millis());
            let retry = headers
                .get(muster_ingest::collector::ATTEMPT_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|n| n.trim() != "1");
            if !retry {
                sim.stats.collections.push(now.timestamp_millis());
            }
            let body = match sim.mode {
                Mode::Malformed if sim.requests % 2 == 1 => {
                    Value::String("<html><body>upstream exploded</body></html>".into())
                }
                Mode::Malformed => {
                    json!({"participants": {"total": "lots"}, "attendance": {"current": "some"}})
                }
                _ => sim.event.snapshot(now),
            };
            sim.served.push_back(body.clone());
            if sim.served.len() > SERVED_KEPT {
                sim.served.pop_front();
            }
            (sim.mode, body)
        }
    };
    let answer = |body: Value| {
        if let Some(at) = snapshot_time(&body) {
            with_sim(&state, &id, |sim| {
                sim.stats.answered.push(at);
                Value::Null
            });
        }
        reply(StatusCode::OK, body)
    };
    match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            reply(StatusCode::GATEWAY_TIMEOUT, Value::Null)
        }
        Mode::Failing | Mode::Unhealthy => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "simulated failure"}),
        ),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            answer(body)
        }
        Mode::Malformed => match body {
            Value::String(html) => {
                warp::reply::with_header(html, "content-type", "text/html").into_response()
            }
            other => reply(StatusCode::OK, other),
        },
        Mode::Healthy => answer(body),
    }
}

/// A simulated snapshot's `timestamp` (epoch ms): what tells its answers apart.
pub fn snapshot_time(body: &Value) -> Option<i64> {
    let at = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str()?).ok()?;
    Some(at.timestamp_millis())
}

fn registration(
    e: &SimEvent,
    auth: &auth::Required,
    base: &str,
    interval: u64,
) -> EventServiceConfig {
    let api = format!("{base}/events/{}", e.id);
    let mut r: EventServiceConfig = serde_json::from_value(json!({
        "eventId": e.id,
        "serviceName": "muster-simulator",
        "endpoints": {"api": api, "healthCheck": format!("{api}/health")},
        "syncSettings": SyncSettings { interval, ..SyncSettings::default() },
        "name": e.name,
        "type": e.event_type,
        "capacity": e.registered,
    }))
    .expect("a valid registration");
    r.authentication = auth.credentials(base);
    r
}
