//! A simulator plus muster workers as processes, for end-to-end tests of one stage or more.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Services, Worker, free_port, run_id, scratch_dir};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub struct Stack {
    pub services: Services,
    pub run: String,
    pub dir: PathBuf,
    pub prefix: String,
    /// Held so the simulator lives exactly as long as the stack.
    _sim: Worker,
    pub sim_url: String,
    pub api: Option<Worker>,
    pub api_url: String,
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts `muster simulate` with `sim_args` and `muster api`.
    pub async fn start(sim_args: &[&str]) -> Self {
        let services = Services::from_env();
        let run = run_id();
        let dir = scratch_dir(&run);
        let prefix = format!("t{run}-");
        let sim_port = free_port();
        let addr = format!("127.0.0.1:{sim_port}");
        let mut args = vec![
            "simulate", "--prefix", &prefix, "--addr", &addr, "--cycle", "5m",
        ];
        args.extend_from_slice(sim_args);
        let sim = Worker::start("simulate", &args, &[], &dir);
        let api_port = free_port();
        let mut stack = Self {
            services,
            run,
            dir,
            prefix,
            _sim: sim,
            sim_url: format!("http://{addr}"),
            api: None,
            api_url: format!("http://127.0.0.1:{api_port}"),
            http: reqwest::Client::new(),
        };
        let api = Worker::start("api", &["api"], &stack.env(api_port), &stack.dir);
        stack.api = Some(api);
        stack.wait_ready(&format!("{}/readyz", stack.api_url)).await;
        stack
            .wait_ready(&format!("{}/services", stack.sim_url))
            .await;
        stack
    }

    /// Environment for a worker: this run's consumer groups, fast leases and health checks.
    pub fn env(&self, port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("MUSTER__KAFKA__GROUP_PREFIX", format!("t{}", self.run)),
            // Skip the history other runs left on the shared cluster.
            ("MUSTER__KAFKA__AUTO_OFFSET_RESET", "latest".to_owned()),
            ("MUSTER__OPS__ADDR", format!("127.0.0.1:{port}")),
            ("MUSTER_API_ADDR", format!("127.0.0.1:{port}")),
            ("MUSTER_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("MUSTER__INGEST__REFRESH_INTERVAL", "1s".to_owned()),
            ("MUSTER__INGEST__LEASE_TTL", "4s".to_owned()),
            ("MUSTER__INGEST__HEALTH_CHECK_INTERVAL", "1s".to_owned()),
        ]
    }

    pub fn start_ingest(&self, name: &str) -> Worker {
        Worker::start(name, &["ingest"], &self.env(free_port()), &self.dir)
    }

    async fn wait_ready(&self, url: &str) {
        super::wait_for(url, Duration::from_secs(60), || {
            let (http, url) = (self.http.clone(), url.to_owned());
            async move {
                let ok = http.get(&url).send().await.ok()?.status().is_success();
                ok.then_some(())
            }
        })
        .await;
    }

    pub fn event(&self, n: usize) -> String {
        format!("{}{n}", self.prefix)
    }

    /// The simulator's registration body for event `n` (1-based).
    pub async fn registration(&self, n: usize) -> Value {
        let all: Value = self
            .http
            .get(format!("{}/services", self.sim_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.as_array().unwrap()[n - 1].clone()
    }

    pub async fn register(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/admin/services", self.api_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_get(&self, event_id: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/api/admin/services/{event_id}", self.api_url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stats(&self, event_id: &str) -> Value {
        self.http
            .get(format!("{}/events/{event_id}/stats", self.sim_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn set_mode(&self, event_id: &str, mode: &str) {
        let r = self
            .http
            .post(format!("{}/events/{event_id}/mode", self.sim_url))
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Removes this run's services so later tests' ingest processes do not poll them.
    pub async fn cleanup(&self) {
        super::forget_services(&self.services.database, &self.prefix).await;
    }
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
