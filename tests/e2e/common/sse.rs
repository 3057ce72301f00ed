//! A plain Server-Sent Events client for `GET /api/partner/stream`: reqwest reading the body as
//! it comes, and the SSE format's few rules (fields up to a blank line, comments ignored).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::api::{Api, Auth};

/// One event of the stream.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

impl Message {
    /// A change (not `ready`, `reset` or `revoked`).
    pub fn is_change(&self) -> bool {
        !matches!(self.event.as_str(), "ready" | "reset" | "revoked")
    }
}

pub struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// Opens the stream as `auth`, resuming after `last_event_id` if given.
    pub async fn open(api: &Api, auth: Auth<'_>, last_event_id: Option<i64>) -> Self {
        let mut req = api
            .request(Method::GET, "/api/partner/stream", auth)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200, "opening the stream");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, waiting up to `within` for it.
    pub async fn next(&mut self, within: Duration) -> Message {
        tokio::time::timeout(within, async {
            loop {
                if let Some(m) = self.take() {
                    return m;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream ended");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    /// Every event up to and including the first that `done` accepts, waiting up to `within`
    /// in all.
    pub async fn until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&Message) -> bool,
    ) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await;
            let stop = done(&m);
            seen.push(m);
            if stop {
                return seen;
            }
        }
    }

    /// Whether the server ends the stream within `within` (events before the end are
    /// dropped).
    pub async fn closed(&mut self, within: Duration) -> bool {
        let end = async { while let Some(_chunk) = self.response.chunk().await.ok().flatten() {} };
        tokio::time::timeout(within, end).await.is_ok()
    }

    /// A complete event from the buffer, if one is there (comments are skipped).
    fn take(&mut self) -> Option<Message> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            let end = normalized.find("\n\n")?;
            let block = normalized[..end].to_owned();
            self.buffer = normalized[end + 2..].to_owned();
            if let Some(m) = parse(&block) {
                return Some(m);
            }
        }
    }
}

/// An event's fields, or `None` for a block of comments only (the keep-alives).
fn parse(block: &str) -> Option<Message> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.parse().expect("a numeric id")),
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(Message {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data: serde_json::from_str(&data.join("\n")).expect("JSON data"),
    })
}
