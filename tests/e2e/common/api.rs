//! `muster api` as a process, and a client that calls it as the admin, a partner or nobody.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::{Worker, free_port, get_json, wait_for};

/// The admin token every test's API runs with.
pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

/// Who calls.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// A partner's API key (`x-api-key`).
    Key(&'a str),
    /// A bearer token: the admin's, or a wrong one.
    Bearer(&'a str),
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn request(&self, method: Method, path: &str, auth: Auth<'_>) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => req,
            Auth::Key(k) => req.header("x-api-key", k),
            Auth::Bearer(t) => req.bearer_auth(t),
        }
    }

    /// The status and JSON body (`null` if none) of a call with `body` as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path, auth);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, auth: Auth<'_>, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, auth, None).await
    }

    /// A call with the admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Auth::Bearer(ADMIN), body).await
    }

    /// The API key of a new partner of `tier` granted `events`.
    pub async fn partner_key(&self, tier: &str, events: &[&str]) -> String {
        let (status, body) = self
            .admin(
                Method::POST,
                "/api/admin/partners",
                Some(json!({"name": format!("{tier} partner"), "tier": tier, "eventIds": events})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["apiKey"].as_str().unwrap().to_owned()
    }
}

/// Starts `muster api` with the admin token, on ports of its own, with `extra` settings (which
/// replace the defaults), and waits until it is ready.
pub async fn start_api<V: AsRef<str>>(dir: &Path, extra: &[(&str, V)]) -> (Worker, Api) {
    let port = free_port();
    let mut env = vec![
        ("MUSTER_API_ADDR", format!("127.0.0.1:{port}")),
        ("MUSTER_ADMIN_TOKEN", ADMIN.to_owned()),
        ("MUSTER__OPS__ADDR", format!("127.0.0.1:{}", free_port())),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.as_ref().to_owned())));
    let worker = Worker::start("api", &["api"], &env, dir);
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    wait_answering(&format!("{}/readyz", api.base)).await;
    (worker, api)
}

/// Waits until `url` answers a GET with JSON.
pub async fn wait_answering(url: &str) {
    wait_for(url, Duration::from_secs(60), || async move {
        get_json(url).await.map(|_| ())
    })
    .await;
}

/// The text `field` of each item of the JSON array `items`.
pub fn each<'a>(items: &'a Value, field: &str) -> Vec<&'a str> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

/// The `detail` of a problem+json answer.
pub fn detail(problem: &Value) -> &str {
    problem["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail in {problem}"))
}

impl Api {
    /// How many times the API's in-memory view has loaded, from its metrics.
    pub async fn view_loads(&self) -> u64 {
        let Ok(res) = self.http.get(format!("{}/metrics", self.base)).send().await else {
            return 0;
        };
        res.text()
            .await
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("muster_api_memory_loads_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map_or(0, |n| n as u64)
    }

    /// Has the API's in-memory view take in what a test wrote to the read models itself (a
    /// projection announces each commit in the change log; a test's seed does not), and waits
    /// until it has: `NOTIFY muster_reload`, as an operator would after a hand fix.
    pub async fn reload_view(&self, db: &tokio_postgres::Client) {
        let before = self.view_loads().await;
        db.batch_execute("NOTIFY muster_reload").await.unwrap();
        wait_for(
            "the in-memory view reloaded",
            Duration::from_secs(60),
            || async { (self.view_loads().await > before).then_some(()) },
        )
        .await;
    }
}
