use std::convert::Infallible;

use metrics_exporter_prometheus::PrometheusHandle;
use muster_runtime::{Health, Shutdown};
use warp::Filter;

use crate::config::ApiConfig;
use crate::{events, problem};

/// Every route, with problem answers, `x-request-id` and request metrics.
pub fn routes(
    cfg: ApiConfig,
    pool: deadpool_postgres::Pool,
    health: Health,
    metrics: PrometheusHandle,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let stale_after = chrono::Duration::seconds(cfg.stale_after_secs as i64);
    let with_pool = warp::any().map(move || pool.clone());
    let public_events = warp::path!("api" / "public" / "events")
        .and(warp::get())
        .and(with_pool)
        .and_then(move |pool| async move {
            events::list(pool, stale_after)
                .await
                .map(|e| warp::reply::json(&e))
                .map_err(warp::reject::custom)
        });
    let app = muster_runtime::ops::routes(health, metrics)
        .or(public_events)
        .recover(problem::recover);
    request_id()
        .and(app)
        .map(|id: String, reply| warp::reply::with_header(reply, "x-request-id", id))
        .with(warp::log::custom(|info| {
            let status = info.status().as_u16().to_string();
            metrics::counter!("muster_api_requests_total", "method" => info.method().to_string(), "status" => status)
                .increment(1);
            metrics::histogram!("muster_api_request_seconds").record(info.elapsed().as_secs_f64());
        }))
}

/// The caller's `x-request-id` if it sent one, else a new one.
fn request_id() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|h: warp::http::HeaderMap| {
        h.get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    })
}

pub async fn run(
    cfg: ApiConfig,
    pool: deadpool_postgres::Pool,
    health: Health,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| anyhow::anyhow!("api cannot listen on {}: {e}", cfg.addr))?;
    tracing::info!(addr = %cfg.addr, "api listening");
    health.ready("api");
    warp::serve(routes(cfg.clone(), pool, health, metrics))
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run()
        .await;
    Ok(())
}
