//! Webhook receivers on loopback, the settings that allow them, and the third-party checks a
//! partner would run on what they got: signatures with the reference `standardwebhooks`
//! library, payloads against the catalogue's JSON Schemas with an independent validator.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::api::{Api, Auth};
use super::{free_port, worker_env};

/// One request a receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How a receiver answers the n-th attempt (1-based) of a message.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// 500, then 503 with `Retry-After: 1`, then 200.
    FailTwiceThenOk,
    Always(u16),
    /// 200 after a pause.
    Slow(Duration),
}

/// Each receiver's behaviour and what it got, by name (the last path segment).
pub type Log = HashMap<String, (Behaviour, Vec<Received>)>;

#[derive(Clone, Default)]
pub struct Receivers(Arc<Mutex<Log>>);

impl Receivers {
    pub fn add(&self, name: &str, b: Behaviour) {
        self.0.lock().unwrap().insert(name.into(), (b, Vec::new()));
    }

    pub fn got(&self, name: &str) -> Vec<Received> {
        self.0.lock().unwrap()[name].1.clone()
    }

    pub async fn serve(self) -> u16 {
        use warp::Filter;
        let port = free_port();
        let me = self.clone();
        let route = warp::post()
            .and(warp::path!("hook" / String))
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |name: String, h: warp::http::HeaderMap, body: warp::hyper::body::Bytes| {
                    let me = me.clone();
                    async move {
                        let header = |n: &str| {
                            h.get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let id = header("webhook-id");
                        let (behaviour, attempt) = {
                            let map = me.0.lock().unwrap();
                            let (b, got) = &map[&name];
                            (*b, got.iter().filter(|r| r.id == id).count() + 1)
                        };
                        let (status, retry_after) = match behaviour {
                            Behaviour::FailTwiceThenOk => match attempt {
                                1 => (500, None),
                                2 => (503, Some("1")),
                                _ => (200, None),
                            },
                            Behaviour::Always(s) => (s, None),
                            Behaviour::Slow(pause) => {
                                tokio::time::sleep(pause).await;
                                (200, None)
                            }
                        };
                        me.0.lock()
                            .unwrap()
                            .get_mut(&name)
                            .unwrap()
                            .1
                            .push(Received {
                                id,
                                timestamp: header("webhook-timestamp"),
                                signature: header("webhook-signature"),
                                body: String::from_utf8_lossy(&body).into_owned(),
                                status,
                            });
                        let mut res = warp::http::Response::builder().status(status);
                        if let Some(r) = retry_after {
                            res = res.header("retry-after", r);
                        }
                        res.body(String::new()).unwrap()
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        port
    }
}

/// The settings of `muster api` and `muster webhooks` for webhook tests: loopback receivers
/// allowed, quick retries.
pub fn hooks_env(run: &str, ops: u16) -> Vec<(&'static str, String)> {
    let mut env = worker_env(&format!("w{run}"), ops);
    env.extend([
        (
            "MUSTER__WEBHOOKS__ALLOW_NETWORKS",
            "[\"127.0.0.1/32\"]".into(),
        ),
        (
            "MUSTER__WEBHOOKS__RETRY_SCHEDULE_SECS",
            "[0, 1, 1, 1, 1, 1]".into(),
        ),
        ("MUSTER__WEBHOOKS__JITTER", "0".into()),
        ("MUSTER__WEBHOOKS__DISABLE_AFTER", "15s".into()),
        ("MUSTER__WEBHOOKS__REQUEST_TIMEOUT", "10s".into()),
        ("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "100ms".into()),
    ]);
    env
}

/// A request as the signature check reads it, expected valid with `secret`.
pub fn check(secret: &str, r: &Received) -> Value {
    json!({
        "secret": secret,
        "id": r.id,
        "timestamp": r.timestamp,
        "signature": r.signature,
        "body": r.body,
        "expect": true,
    })
}

/// Runs `tests/third_party/{script}` on `input` (written as JSON into `dir`) with the test
/// Python; its output, or a failure with it.
pub fn third_party(dir: &Path, script: &str, input: &impl serde::Serialize) -> String {
    let file = dir.join(format!("{script}.json"));
    std::fs::write(&file, serde_json::to_vec(input).unwrap()).unwrap();
    let python = std::env::var("MUSTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!("{}/tests/third_party/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .args([&script, file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} refused:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Checks the catalogue's examples and `messages` (bodies as received) against the catalogue's
/// own schemas, and that each schema refuses a field it does not list.
pub async fn validate_messages(api: &Api, key: &str, dir: &Path, messages: &[String]) {
    let (status, catalogue) = api
        .get(Auth::Key(key), "/api/partner/webhooks/event-types")
        .await;
    assert_eq!(status, 200, "{catalogue}");
    assert!(!catalogue.to_string().contains("$ref"), "{catalogue}");
    let out = third_party(
        dir,
        "validate_webhooks.py",
        &json!({"catalogue": catalogue, "messages": messages}),
    );
    assert!(
        out.contains(&format!("5 schemas, {} messages valid", messages.len())),
        "{out}"
    );
}
