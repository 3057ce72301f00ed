//! Registers the simulated services with muster's admin API and pushes their check-ins, signed
//! with the webhook secret each registration answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use muster_ingest::service::EventServiceConfig;
use muster_runtime::Shutdown;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::model::SimEvent;

/// Services registered at once: a registration answers only after the service's health check
/// and first collection, so one at a time took minutes for a thousand services.
const REGISTERING_AT_ONCE: usize = 16;

/// Registers every service; returns each event's webhook secret.
pub async fn register_all(
    api: &str,
    token: &str,
    registrations: &[EventServiceConfig],
) -> anyhow::Result<HashMap<String, String>> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/admin/services", api.trim_end_matches('/'));
    let limit = Arc::new(Semaphore::new(REGISTERING_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for r in registrations.iter().cloned() {
        let (http, url, token, limit) =
            (http.clone(), url.clone(), token.to_owned(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let secret = register_fresh(&http, &url, &token, &r).await?;
            anyhow::Ok((r.event_id, secret))
        });
    }
    let mut secrets = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        if let (event_id, Some(secret)) = done.context("a registration task")?? {
            secrets.insert(event_id, secret);
        }
    }
    Ok(secrets)
}

/// Registers one service, afresh if an earlier run registered it; its webhook secret.
async fn register_fresh(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    r: &EventServiceConfig,
) -> anyhow::Result<Option<String>> {
    let (mut status, mut body) = register(http, url, token, r).await?;
    if status == reqwest::StatusCode::OK && body["webhookSecret"].is_null() {
        // Registered by an earlier run, whose secret is gone with it: the service is
        // registered afresh, so that its check-ins can be signed again.
        http.delete(format!("{url}/{}", r.event_id))
            .bearer_auth(token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("removing a service registered by an earlier run")?;
        (status, body) = register(http, url, token, r).await?;
    }
    tracing::info!(event_id = %r.event_id, %status, "registered with muster");
    Ok(body["webhookSecret"].as_str().map(str::to_owned))
}

/// Every second, pushes the check-ins and check-outs each event's curve implies.
pub async fn push_checkins(
    api: String,
    events: Vec<SimEvent>,
    secrets: HashMap<String, String>,
    shutdown: Shutdown,
) {
    let http = reqwest::Client::new();
    let mut last: HashMap<String, (i64, i64)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now();
        for e in &events {
            let Some(secret) = secrets.get(&e.id) else {
                continue;
            };
            let s = e.snapshot(now);
            let (ins, outs) = (
                s["attendance"]["checkedIn"].as_i64().unwrap_or(0),
                s["attendance"]["checkedOut"].as_i64().unwrap_or(0),
            );
            let (prev_in, prev_out) = last
                .insert(e.id.clone(), (ins, outs))
                .unwrap_or((ins, outs));
            let gates = s["gates"].as_array().map(Vec::len).unwrap_or(1).max(1);
            let mut batch = Vec::new();
            for (from, to, direction) in [(prev_in, ins, "in"), (prev_out, outs, "out")] {
                for n in from.max(0)..to.max(from) {
                    batch.push(json!({
                        "gateId": format!("G{}", n as usize % gates + 1),
                        "participantId": format!("{}-P{n}", e.id),
                        "direction": direction,
                        "scannedAt": now.to_rfc3339(),
                    }));
                }
            }
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = send(&http, &api, &e.id, secret, &Value::Array(batch)).await {
                tracing::warn!(error = %e, "pushing check-ins failed");
            }
        }
    }
}

pub async fn send(
    http: &reqwest::Client,
    api: &str,
    event_id: &str,
    secret: &str,
    body: &Value,
) -> anyhow::Result<reqwest::StatusCode> {
    let body = serde_json::to_vec(body)?;
    let id = format!("msg_{}", muster_runtime::unique_suffix());
    let ts = chrono::Utc::now().timestamp();
    let signature = muster_runtime::signature::sign(secret, &id, ts, &body)?;
    let answer = http
        .post(format!(
            "{}/api/ingest/{event_id}/checkins",
            api.trim_end_matches('/')
        ))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await?;
    Ok(answer.status())
}

/// Registers one service: the answer's status and body (with the webhook secret when new).
async fn register(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    r: &EventServiceConfig,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let mut delay = Duration::from_millis(500);
    let answer = loop {
        match http.post(url).bearer_auth(token).json(r).send().await {
            Ok(a) => break a,
            Err(e) if delay < Duration::from_secs(30) => {
                tracing::info!(error = %e, "muster's API is not answering yet; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e).context("registering with muster"),
        }
    };
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "registering {} answered {status}: {body}",
        r.event_id
    );
    Ok((status, body))
}
