use std::convert::Infallible;

use metrics_exporter_prometheus::PrometheusHandle;
use muster_ingest::Registrar;
use muster_ingest::checkins::Receiver;
use muster_runtime::{Health, Shutdown};
use uuid::Uuid;
use warp::Filter;

use crate::config::ApiConfig;
use crate::{admin, checkins, events, partners, problem};

/// What the routes need.
#[derive(Clone)]
pub struct AppState {
    pub pool: deadpool_postgres::Pool,
    pub registrar: Registrar,
    pub receiver: Receiver,
    pub health: Health,
    pub metrics: PrometheusHandle,
}

const MAX_BODY: u64 = 4 * 1024 * 1024;

/// Every route, with problem answers, `x-request-id` and request metrics.
pub fn routes(
    cfg: ApiConfig,
    state: AppState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let stale_after = chrono::Duration::seconds(cfg.stale_after_secs as i64);
    let pool = state.pool.clone();
    let public_events = warp::path!("api" / "public" / "events")
        .and(warp::get())
        .and(warp::any().map(move || pool.clone()))
        .and_then(move |pool| async move {
            events::list(pool, stale_after)
                .await
                .map(|e| warp::reply::json(&e))
                .map_err(warp::reject::custom)
        });

    let registrar = state.registrar.clone();
    let with_registrar = warp::any().map(move || registrar.clone());
    let admin = admin::require_admin(cfg.admin_token.clone());
    let services = warp::path!("api" / "admin" / "services");
    let service = warp::path!("api" / "admin" / "services" / String);
    let register = services
        .and(warp::post())
        .and(admin.clone())
        .and(with_registrar.clone())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::json())
        .and_then(admin::register);
    let list = services
        .and(warp::get())
        .and(admin.clone())
        .and(with_registrar.clone())
        .and_then(admin::list);
    let get = service
        .and(warp::get())
        .and(admin.clone())
        .and(with_registrar.clone())
        .and_then(admin::get);
    let remove = service
        .and(warp::delete())
        .and(admin)
        .and(with_registrar)
        .and_then(admin::remove);

    let pool = state.pool.clone();
    let with_pool = warp::any().map(move || pool.clone());
    let admin = admin::require_admin(cfg.admin_token.clone());
    let create_partner = warp::path!("api" / "admin" / "partners")
        .and(warp::post())
        .and(admin.clone())
        .and(with_pool.clone())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::json())
        .and_then(partners::create);
    let rotate_key = warp::path!("api" / "admin" / "partners" / Uuid / "rotate")
        .and(warp::post())
        .and(admin.clone())
        .and(with_pool.clone())
        .and(
            warp::body::content_length_limit(MAX_BODY)
                .and(warp::body::json())
                .or(warp::any().map(partners::Rotate::default))
                .unify(),
        )
        .and_then(partners::rotate);
    let revoke_partner = warp::path!("api" / "admin" / "partners" / Uuid)
        .and(warp::delete())
        .and(admin)
        .and(with_pool.clone())
        .and_then(partners::revoke);
    let partner =
        partners::require_partner(state.pool.clone(), partners::Limits::new(&cfg.rate_limits));
    let partner_events = warp::path!("api" / "partner" / "events")
        .and(warp::get())
        .and(partner.clone())
        .and(with_pool.clone())
        .and_then(partners::events);
    let partner_attendance = warp::path!("api" / "partner" / "events" / String / "attendance")
        .and(warp::get())
        .and(partner)
        .and(with_pool)
        .and_then(partners::attendance);

    let receiver = state.receiver.clone();
    let push_checkins = warp::path!("api" / "ingest" / String / "checkins")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(warp::any().map(move || receiver.clone()))
        .and_then(checkins::accept);

    let app = muster_runtime::ops::routes(state.health.clone(), state.metrics.clone())
        .or(public_events)
        .or(register)
        .or(list)
        .or(get)
        .or(remove)
        .or(push_checkins)
        .or(create_partner)
        .or(rotate_key)
        .or(revoke_partner)
        .or(partner_events)
        .or(partner_attendance)
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

pub async fn run(cfg: ApiConfig, state: AppState, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| anyhow::anyhow!("api cannot listen on {}: {e}", cfg.addr))?;
    tracing::info!(addr = %cfg.addr, "api listening");
    state.health.ready("api");
    warp::serve(routes(cfg, state))
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run()
        .await;
    Ok(())
}
