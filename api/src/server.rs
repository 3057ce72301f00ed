use std::convert::Infallible;

use metrics_exporter_prometheus::PrometheusHandle;
use muster_ingest::Registrar;
use muster_ingest::checkins::Receiver;
use muster_runtime::{Health, Shutdown};
use uuid::Uuid;
use warp::Filter;

use crate::config::ApiConfig;
use crate::{
    admin, analytics, checkins, dashboard, events, openapi, partners, premium, problem, sql,
    webhooks,
};

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
}

const MAX_BODY: u64 = 4 * 1024 * 1024;

/// What each key may use, shared by the HTTP routes and Flight SQL so that a key has one
/// budget whichever way it comes in: its tier's rate limit, and its queries running at once.
#[derive(Clone)]
pub struct Guards {
    pub rate: partners::Limits,
    pub queries: muster_analytics::Slots,
}

impl Guards {
    pub fn new(cfg: &ApiConfig) -> Self {
        Self {
            rate: partners::Limits::new(&cfg.rate_limits),
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
        .and(json_body())
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
        .and(json_body())
        .and_then(partners::create);
    let rotate_key = warp::path!("api" / "admin" / "partners" / Uuid / "rotate")
        .and(warp::post())
        .and(admin.clone())
        .and(with_pool.clone())
        .and(optional_json_body())
        .and_then(partners::rotate);
    let revoke_partner = warp::path!("api" / "admin" / "partners" / Uuid)
        .and(warp::delete())
        .and(admin.clone())
        .and(with_pool.clone())
        .and_then(partners::revoke);
    let list_partners = warp::path!("api" / "admin" / "partners")
        .and(warp::get())
        .and(admin)
        .and(with_pool.clone())
        .and_then(partners::list)
        .map(|r| warp::reply::json(&r));
    let limits = guards.rate.clone();
    let partner = partners::require_partner(state.pool.clone(), limits.clone());
    let premium = partners::require_premium(state.pool.clone(), limits.clone());
    let viewer = partners::require_viewer(
        cfg.admin_token().map(str::to_owned),
        state.pool.clone(),
        limits,
    );
    let with_stale = warp::any().map(move || stale_after);
    let partner_events = warp::path!("api" / "partner" / "events")
        .and(warp::get())
        .and(partner.clone())
        .and(with_pool.clone())
        .and_then(partners::events)
        .map(|r| warp::reply::json(&r));
    let partner_attendance = warp::path!("api" / "partner" / "events" / String / "attendance")
        .and(warp::get())
        .and(partner.clone())
        .and(with_pool.clone())
        .and_then(partners::attendance)
        .map(|r| warp::reply::json(&r));
    let partner_summary = warp::path!("api" / "partner" / "analytics" / "summary")
        .and(warp::get())
        .and(partner.clone().map(partners::Viewer::Partner))
        .and(with_pool.clone())
        .and(with_stale)
        .and_then(
            |v, pool, stale| async move { dashboard::analytics_summary(v, pool, stale).await },
        )
        .map(|r| warp::reply::json(&r));
    let dashboard = warp::path!("api" / "dashboard")
        .and(warp::get())
        .and(warp::query::<dashboard::DashboardQuery>())
        .and(viewer.clone())
        .and(with_pool.clone())
        .and(with_stale)
        .and_then(|q, v, pool, stale| async move { dashboard::dashboard(q, v, pool, stale).await })
        .map(|r| warp::reply::json(&r));
    let insights = warp::path!("api" / "events" / String / "insights")
        .and(warp::get())
        .and(warp::query::<dashboard::InsightsQuery>())
        .and(viewer)
        .and(with_pool.clone())
        .and(with_stale)
        .and_then(|id, q, v, pool, stale| async move {
            dashboard::event_insights(id, q, v, pool, stale).await
        })
        .map(|r| warp::reply::json(&r));
    let premium_series = warp::path!("api" / "premium" / "events" / String / "series")
        .and(warp::get())
        .and(warp::query::<premium::SeriesQuery>())
        .and(premium.clone())
        .and(with_pool.clone())
        .and_then(premium::series)
        .map(|r| warp::reply::json(&r));
    let premium_gates = warp::path!("api" / "premium" / "events" / String / "gates")
        .and(warp::get())
        .and(warp::query::<premium::SeriesQuery>())
        .and(premium.clone())
        .and(with_pool.clone())
        .and_then(premium::gates)
        .map(|r| warp::reply::json(&r));
    let guards_sql = sql::Sql {
        cfg: cfg.sql.clone(),
        slots: guards.queries.clone(),
    };
    let premium_sql = warp::path!("api" / "premium" / "sql")
        .and(warp::post())
        .and(premium.clone())
        .and(with_pool.clone())
        .and(warp::any().map(move || guards_sql.clone()))
        .and(json_body())
        .and_then(sql::run)
        .map(|r| warp::reply::json(&r));
    let insights_cfg = state.insights.clone();
    let with_insights = warp::any().map(move || insights_cfg.clone());
    let premium_forecast = warp::path!("api" / "premium" / "events" / String / "forecast")
        .and(warp::get())
        .and(premium.clone())
        .and(with_pool.clone())
        .and_then(analytics::forecast)
        .map(|r| warp::reply::json(&r));
    let premium_behaviour = warp::path!("api" / "premium" / "events" / String / "behaviour")
        .and(warp::get())
        .and(premium.clone())
        .and(with_pool.clone())
        .and(with_insights.clone())
        .and_then(analytics::behaviour)
        .map(|r| warp::reply::json(&r));
    let premium_patterns = warp::path!("api" / "premium" / "analytics" / "patterns")
        .and(warp::get())
        .and(warp::query::<analytics::PatternsQuery>())
        .and(premium.clone())
        .and(with_pool.clone())
        .and(with_insights)
        .and_then(analytics::patterns)
        .map(|r| warp::reply::json(&r));
    let premium_roi = warp::path!("api" / "premium" / "analytics" / "roi")
        .and(warp::get())
        .and(premium.clone())
        .and(with_pool.clone())
        .and_then(analytics::roi)
        .map(|r| warp::reply::json(&r));
    let premium_alerts = warp::path!("api" / "premium" / "events" / String / "alerts")
        .and(warp::get())
        .and(warp::query::<premium::WindowQuery>())
        .and(premium)
        .and(with_pool)
        .and_then(premium::alerts)
        .map(|r| warp::reply::json(&r));
    let store = state.webhooks.clone();
    let with_store = warp::any().map(move || store.clone());
    let hooks = warp::path!("api" / "partner" / "webhooks");
    let hook = warp::path!("api" / "partner" / "webhooks" / String);
    let webhook_routes = hooks
        .and(warp::post())
        .and(partner.clone())
        .and(with_store.clone())
        .and(json_body())
        .and_then(webhooks::create)
        .or(hooks
            .and(warp::get())
            .and(partner.clone())
            .and(with_store.clone())
            .and_then(webhooks::list))
        .unify()
        .or(hook
            .and(warp::get())
            .and(partner.clone())
            .and(with_store.clone())
            .and_then(webhooks::get))
        .unify()
        .or(hook
            .and(warp::delete())
            .and(partner.clone())
            .and(with_store.clone())
            .and_then(webhooks::delete))
        .unify()
        .or(
            warp::path!("api" / "partner" / "webhooks" / String / "rotate-secret")
                .and(warp::post())
                .and(partner.clone())
                .and(with_store.clone())
                .and(optional_json_body())
                .and_then(webhooks::rotate),
        )
        .unify()
        .or(
            warp::path!("api" / "partner" / "webhooks" / String / "enable")
                .and(warp::post())
                .and(partner.clone())
                .and(with_store.clone())
                .and_then(webhooks::enable),
        )
        .unify()
        .or(
            warp::path!("api" / "partner" / "webhooks" / String / "deliveries")
                .and(warp::get())
                .and(warp::query::<webhooks::DeliveriesQuery>())
                .and(partner.clone())
                .and(with_store.clone())
                .and_then(webhooks::deliveries),
        )
        .unify()
        .or(
            warp::path!("api" / "partner" / "webhooks" / String / "replay")
                .and(warp::post())
                .and(partner.clone())
                .and(with_store)
                .and(json_body())
                .and_then(webhooks::replay),
        )
        .unify();
    let document = openapi::document();
    let openapi_json = warp::path!("openapi.json").and(warp::get()).map(move || {
        warp::reply::with_header(document.clone(), "content-type", "application/json")
    });

    let receiver = state.receiver.clone();
    let push_checkins = warp::path!("api" / "ingest" / String / "checkins")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(warp::any().map(move || receiver.clone()))
        .and_then(checkins::accept);

    let routes = muster_runtime::ops::routes(state.health.clone(), state.metrics.clone())
        .or(public_events)
        .or(register)
        .or(list)
        .or(get)
        .or(remove)
        .or(push_checkins)
        .or(create_partner)
        .or(rotate_key)
        .or(revoke_partner)
        .or(list_partners)
        .or(partner_events)
        .or(partner_attendance)
        .or(partner_summary)
        .or(dashboard)
        .or(insights)
        .or(premium_series)
        .or(premium_gates)
        .or(premium_alerts)
        .or(premium_sql)
        .or(premium_forecast)
        .or(premium_behaviour)
        .or(premium_patterns)
        .or(premium_roi)
        .or(webhook_routes)
        .or(openapi_json);
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

/// A JSON body of at most `MAX_BODY` bytes. NUL characters are refused here, once for every
/// route, because PostgreSQL cannot store them in text or jsonb.
fn json_body<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .and_then(|body: bytes::Bytes| async move { parse_body(&body) })
}

/// A body that may be left out (then `T::default()`); one that is sent must be valid. A body
/// that does not parse is a `400`, never silently the defaults: a rotation whose
/// `graceSeconds` was sent as a string must not revoke the live key at once.
fn optional_json_body<T: serde::de::DeserializeOwned + Default + Send>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .and_then(|body: bytes::Bytes| async move {
            if body.iter().all(u8::is_ascii_whitespace) {
                Ok(T::default())
            } else {
                parse_body(&body)
            }
        })
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, warp::Rejection> {
    let invalid = |detail: String| {
        warp::reject::custom(
            problem::Problem::new(
                warp::http::StatusCode::BAD_REQUEST,
                "invalid-body",
                "The request body is invalid",
            )
            .detail(detail),
        )
    };
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(invalid("NUL characters (\\u0000) are not allowed".into()));
    }
    // The error names the field (`graceSeconds: invalid type: string "3600", expected u32`).
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            invalid(e.inner().to_string())
        } else {
            invalid(format!("{path}: {}", e.inner()))
        }
    })?;
    de.end().map_err(|e| invalid(e.to_string()))?;
    Ok(value)
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
