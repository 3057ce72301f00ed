//! Partner webhook receivers on the simulator, for the fault suite: `POST /hooks/{name}`
//! answers 204 and notes what it got (or, while the receiver hangs, holds the request until the
//! sender gives up); `GET /hooks/{name}` lists the notes; `POST /hooks/{name}/mode` with
//! `{"hang": true|false}` switches hanging. A receiver exists from its first request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

/// One message a receiver answered with a 2xx.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The `webhook-id` header: receivers dedupe on it.
    pub webhook_id: String,
    /// The body's `type`, `data.eventId` and `data.sequence`.
    pub r#type: String,
    pub event_id: String,
    pub sequence: i64,
    /// When it arrived (epoch ms).
    pub at: i64,
}

#[derive(Default)]
struct Receiver {
    hang: bool,
    receipts: Vec<Receipt>,
}

#[derive(Clone, Default)]
pub struct Receivers(Arc<Mutex<HashMap<String, Receiver>>>);

#[derive(Deserialize)]
struct ModeChange {
    hang: bool,
}

/// How long a hanging receiver holds a request: longer than any sender waits.
const HANG: Duration = Duration::from_secs(120);

impl Receivers {
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Receiver) -> T) -> T {
        f(self
            .0
            .lock()
            .expect("poisoned")
            .entry(name.to_owned())
            .or_default())
    }

    pub fn routes(
        self,
    ) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
        use warp::Reply;
        let state = warp::any().map(move || self.clone());
        let receive = warp::path!("hooks" / String)
            .and(warp::post())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and(state.clone())
            .then(receive);
        let list = warp::path!("hooks" / String)
            .and(warp::get())
            .and(state.clone())
            .map(|name: String, r: Receivers| {
                warp::reply::json(&r.with(&name, |r| r.receipts.clone())).into_response()
            });
        let mode = warp::path!("hooks" / String / "mode")
            .and(warp::post())
            .and(warp::body::json())
            .and(state)
            .map(|name: String, m: ModeChange, r: Receivers| {
                r.with(&name, |r| r.hang = m.hang);
                warp::reply::json(&json!({"hang": m.hang})).into_response()
            });
        receive.or(list).unify().or(mode).unify()
    }
}

async fn receive(
    name: String,
    headers: HeaderMap,
    body: bytes::Bytes,
    r: Receivers,
) -> warp::reply::Response {
    use warp::Reply;
    if r.with(&name, |r| r.hang) {
        tokio::time::sleep(HANG).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(webhook_id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let receipt = Receipt {
        webhook_id: webhook_id.to_owned(),
        r#type: message["type"].as_str().unwrap_or_default().to_owned(),
        event_id: message["data"]["eventId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        sequence: message["data"]["sequence"].as_i64().unwrap_or(-1),
        at: chrono::Utc::now().timestamp_millis(),
    };
    r.with(&name, |r| r.receipts.push(receipt));
    StatusCode::NO_CONTENT.into_response()
}
