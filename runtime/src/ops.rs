//! The operations endpoints every worker serves: `/healthz` (alive), `/readyz` (every part
//! ready) and `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusHandle;
use warp::Filter;
use warp::http::StatusCode;

use crate::{Health, Shutdown};

/// Installs the global Prometheus recorder (once per process: later calls return the same
/// handle); call it before any metric is touched.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    static INSTALLED: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = INSTALLED.get() {
        return Ok(h.clone());
    }
    let h = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    Ok(INSTALLED.get_or_init(|| h).clone())
}

/// The three routes, for servers that mount them beside their own (the API does).
pub fn routes(
    health: Health,
    metrics: PrometheusHandle,
) -> impl Filter<Extract = (Box<dyn warp::Reply>,), Error = warp::Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        let parts = health.snapshot();
        let ready = health.is_ready();
        let status = match (ready, health.is_degraded()) {
            (false, _) => "not-ready",
            (true, true) => "degraded",
            (true, false) => "ready",
        };
        let body = serde_json::json!({
            "status": status,
            "parts": parts,
        });
        let code = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        warp::reply::with_status(warp::reply::json(&body), code)
    });
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    healthz
        .map(boxed)
        .or(readyz.map(boxed))
        .unify()
        .or(metrics.map(boxed))
        .unify()
}

fn boxed(r: impl warp::Reply + 'static) -> Box<dyn warp::Reply> {
    Box::new(r)
}

/// Serves the ops routes on `addr` until shutdown.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("ops endpoint cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "ops endpoints (/healthz, /readyz, /metrics) listening");
    warp::serve(routes(health, metrics).recover(not_found))
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run()
        .await;
    Ok(())
}

async fn not_found(_: warp::Rejection) -> Result<impl warp::Reply, Infallible> {
    Ok(warp::reply::with_status(
        "not found\n",
        StatusCode::NOT_FOUND,
    ))
}
