//! A simulator plus muster workers as processes, for end-to-end tests of one stage or more.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{ADMIN, Api, start_api, wait_answering};
use super::{Services, Worker, free_port, get_json, run_id, scratch_dir, worker_env};

/// Tests of a stack share the services table (every ingest process leases from all of it), so
/// they take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Stack {
    pub services: Services,
    pub run: String,
    pub dir: PathBuf,
    pub prefix: String,
    /// Held so that the simulator, the API and the turn live exactly as long as the stack.
    _sim: Worker,
    _api_worker: Worker,
    _turn: tokio::sync::MutexGuard<'static, ()>,
    pub sim_url: String,
    pub api: Api,
}

impl Stack {
    /// Starts `muster simulate` with `sim_args` and `muster api`, once the stack before it is
    /// gone.
    pub async fn start(sim_args: &[&str]) -> Self {
        let turn = SERIAL.lock().await;
        let services = Services::from_env();
        let run = run_id();
        let dir = scratch_dir(&run);
        let prefix = format!("t{run}-");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "simulate", "--prefix", &prefix, "--addr", &addr, "--cycle", "5m",
        ];
        args.extend_from_slice(sim_args);
        let sim = Worker::start("simulate", &args, &[], &dir);
        let (api_worker, api) = start_api(&dir, &env(&run, free_port())).await;
        let sim_url = format!("http://{addr}");
        wait_answering(&format!("{sim_url}/services")).await;
        Self {
            services,
            run,
            dir,
            prefix,
            _sim: sim,
            _api_worker: api_worker,
            _turn: turn,
            sim_url,
            api,
        }
    }

    /// Starts a `muster ingest` process per name, side by side, and waits until each is ready:
    /// it holds its leases and polls.
    pub async fn start_ingest<const N: usize>(&self, names: [&str; N]) -> [Worker; N] {
        let started = names.map(|name| {
            let ops = free_port();
            let env = env(&self.run, ops);
            (Worker::start(name, &["ingest"], &env, &self.dir), ops)
        });
        for (_, ops) in &started {
            wait_answering(&format!("http://127.0.0.1:{ops}/readyz")).await;
        }
        started.map(|(worker, _)| worker)
    }

    pub fn event(&self, n: usize) -> String {
        format!("{}{n}", self.prefix)
    }

    /// The simulator's registration body for event `n` (1-based).
    pub async fn registration(&self, n: usize) -> Value {
        let all = get_json(&format!("{}/services", self.sim_url))
            .await
            .unwrap();
        all.as_array().unwrap()[n - 1].clone()
    }

    pub async fn register(&self, body: &Value) -> (u16, Value) {
        self.api
            .admin(Method::POST, "/api/admin/services", Some(body.clone()))
            .await
    }

    pub async fn admin_get(&self, event_id: &str) -> (u16, Value) {
        let path = format!("/api/admin/services/{event_id}");
        self.api.admin(Method::GET, &path, None).await
    }

    pub async fn stats(&self, event_id: &str) -> Value {
        get_json(&format!("{}/events/{event_id}/stats", self.sim_url))
            .await
            .unwrap()
    }

    pub async fn set_mode(&self, event_id: &str, mode: &str) {
        let r = self
            .api
            .http
            .post(format!("{}/events/{event_id}/mode", self.sim_url))
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

impl Drop for Stack {
    /// Forgets this run's services however the test ended, so that later tests' ingest
    /// processes do not poll a simulator that is gone.
    fn drop(&mut self) {
        let forget = format!(
            "DELETE FROM services WHERE event_id LIKE '{}%'",
            self.prefix
        );
        let out = Command::new("psql")
            .args([&self.services.database, "-qc", &forget])
            .output();
        let error = match out {
            Ok(o) if o.status.success() => return,
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        eprintln!("forgetting the services of {}: {error}", self.prefix);
    }
}

/// Environment for a worker of run `run`: its consumer groups, fast leases and health checks.
fn env(run: &str, ops: u16) -> Vec<(&'static str, String)> {
    let mut env = worker_env(&format!("t{run}"), ops);
    env.extend([
        ("MUSTER_ADMIN_TOKEN", ADMIN.to_owned()),
        ("MUSTER__INGEST__REFRESH_INTERVAL", "1s".to_owned()),
        ("MUSTER__INGEST__LEASE_TTL", "4s".to_owned()),
        ("MUSTER__INGEST__HEALTH_CHECK_INTERVAL", "1s".to_owned()),
    ]);
    env
}

/// Gaps between consecutive request times, in seconds.
pub fn gaps(times: &Value) -> Vec<f64> {
    let t: Vec<i64> = times
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    t.windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1000.0)
        .collect()
}

/// Whether `gaps` (seconds between the collections a service saw) show two pollers at
/// `interval` seconds. Two pollers interleave: a short gap with the rest of the interval beside
/// it (x, interval - x). One poller whose request reached the service late (a starved machine:
/// a load above 10 on two cores has shown 3 s) shows a long gap, then a short one making up
/// for it (4.95, 0.89 at 2 s); so a gap under half the interval counts only when it and the
/// gap before it add up to less than one and a half intervals.
pub fn polled_twice(gaps: &[f64], interval: f64) -> bool {
    gaps.first()
        .map(|first| (interval, *first))
        .into_iter()
        .chain(gaps.windows(2).map(|w| (w[0], w[1])))
        .any(|(before, gap)| gap < interval / 2.0 && before + gap < interval * 1.5)
}

#[test]
fn two_pollers_are_told_from_one_late_poller() {
    assert!(!polled_twice(&[2.0, 2.1, 1.9], 2.0));
    assert!(
        !polled_twice(&[4.951, 0.889, 1.925], 2.0),
        "late, then on time"
    );
    assert!(
        polled_twice(&[2.0, 0.079, 1.95], 2.0),
        "a second poller at a handover"
    );
    assert!(
        polled_twice(&[0.3, 1.7, 0.3, 1.7], 2.0),
        "two pollers all along"
    );
    assert!(
        polled_twice(&[0.05], 1.0),
        "a second poller right after the first"
    );
}
