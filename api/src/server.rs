use std::convert::Infallible;

use metrics_exporter_prometheus::PrometheusHandle;
use muster_ingest::Registrar;
use muster_ingest::checkins::Receiver;
use muster_runtime::{Health, Shutdown};
use warp::Filter;

use crate::auth::{Auth, Limits};
use crate::config::ApiConfig;
use crate::route::Ctx;
use crate::{openapi, problem, resources, web};

/// What the routes need.
#[derive(Clone)]
pub struct AppState {
    pub pool: deadpool_postgres::Pool,
    pub registrar: Registrar,
    pub receiver: Receiver,
    pub health: Health,
    pub metrics: PrometheusHandle,
    pub webhooks: muster_webhooks::subscriptions::Store,
    /// What the insight routes show (k-anonymity, partners' minimum events per pattern cell).
    pub insights: muster_analytics::insights::InsightsConfig,
    /// The change feed every live view shares (started with the state, stopped at shutdown).
    pub feed: crate::feed::Feed,
}

/// What each key may use, shared by the HTTP routes and Flight SQL so that a key has one
/// budget whichever way it comes in: its tier's rate limit, and its queries running at once.
#[derive(Clone)]
pub struct Guards {
    pub rate: Limits,
    pub queries: muster_analytics::Slots,
}

impl Guards {
    pub fn new(cfg: &ApiConfig) -> Self {
        Self {
            rate: Limits::new(&cfg.rate_limits),
            queries: muster_analytics::Slots::new(cfg.sql.max_concurrent_queries),
        }
    }
}

/// Every route, with problem answers, `x-request-id` and request metrics.
pub fn routes(
    cfg: ApiConfig,
    state: AppState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let guards = Guards::new(&cfg);
    guarded_routes(cfg, state, guards)
}

fn guarded_routes(
    cfg: ApiConfig,
    state: AppState,
    guards: Guards,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let auth = Auth::new(
        state.feed.keys(),
        guards.rate.clone(),
        cfg.admin_token().map(str::to_owned),
    );
    let ops = muster_runtime::ops::routes(state.health.clone(), state.metrics.clone());
    let ctx = Ctx {
        state,
        cfg,
        auth,
        guards,
    };
    let routes = ops
        .or(resources::routes(&ctx))
        .or(openapi::routes())
        .or(web::routes(&ctx));
    let app = no_nul().and(routes).recover(problem::recover);
    let templates = std::sync::Arc::new(openapi::RouteTemplates::from_document());
    let allow = templates.clone();
    request_id()
        .and(warp::path::full())
        .and(app)
        .map(move |id: String, path: warp::path::FullPath, reply| {
            use warp::Reply;
            let mut res = warp::reply::with_header(reply, "x-request-id", id).into_response();
            // RFC 9110: a 405 names the methods the resource does answer.
            if res.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED
                && let Some(methods) = allow.allow(path.as_str())
                && let Ok(v) = warp::http::HeaderValue::from_str(methods)
            {
                res.headers_mut().insert("allow", v);
            }
            res
        })
        .with(warp::log::custom(move |info| {
            let route = templates.label(info.path()).to_owned();
            let method = method_label(info.method());
            let status = info.status().as_u16();
            tracing::debug!(%method, %route, path = info.path(), status,
                elapsed_ms = info.elapsed().as_secs_f64() * 1e3, "request");
            metrics::counter!("muster_api_requests_total",
                "method" => method, "route" => route.clone(), "status" => status.to_string())
            .increment(1);
            metrics::histogram!("muster_api_request_seconds", "method" => method, "route" => route)
                .record(info.elapsed().as_secs_f64());
        }))
}

/// The method as a metrics label, from a fixed set: a client inventing methods must not
/// create a time series per invention.
fn method_label(method: &warp::http::Method) -> &'static str {
    use warp::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Refuses a path or query string carrying an encoded NUL (`%00`), for the same reason.
fn no_nul() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(|path: warp::path::FullPath, query: String| async move {
            let nul = |s: &str| {
                s.as_bytes()
                    .windows(3)
                    .any(|w| w.eq_ignore_ascii_case(b"%00"))
            };
            if nul(path.as_str()) || nul(&query) {
                Err(warp::reject::custom(
                    problem::Problem::new(
                        warp::http::StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "The request is invalid",
                    )
                    .detail("NUL characters (%00) are not allowed in paths or query strings"),
                ))
            } else {
                Ok(())
            }
        })
        .untuple_one()
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

pub async fn run(mut cfg: ApiConfig, state: AppState, shutdown: Shutdown) -> anyhow::Result<()> {
    cfg.validate()?;
    crate::read::search::check_database(&state.pool).await?;
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| anyhow::anyhow!("api cannot listen on {}: {e}", cfg.addr))?;
    let guards = Guards::new(&cfg);
    let flight = match cfg.flight.addr {
        Some(addr) => {
            let listener = muster_analytics::flight::bind(addr).await?;
            tracing::info!(%addr, "flight sql listening");
            let auth = crate::flight::Authorizer::new(
                state.pool.clone(),
                state.feed.keys(),
                cfg.admin_token().map(str::to_owned),
                cfg.flight.clone(),
                &guards,
            );
            let stop = shutdown.clone();
            Some(muster_analytics::flight::serve(
                listener,
                auth,
                async move { stop.cancelled().await },
            ))
        }
        None => None,
    };
    tracing::info!(addr = %cfg.addr, "api listening");
    state.health.ready("api");
    let http = warp::serve(guarded_routes(cfg, state, guards))
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run();
    match flight {
        // Either failing stops the process; on shutdown both finish what they serve.
        Some(flight) => {
            let flight = async { flight.await.map_err(|e| e.context("flight sql")) };
            tokio::try_join!(flight, async {
                http.await;
                Ok(())
            })?;
        }
        None => http.await,
    }
    Ok(())
}
