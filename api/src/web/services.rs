//! `GET /services` and `GET /services/{eventId}` (admin only): every registered upstream
//! service with its health, last successful sync, lag, failures and the ingest process polling
//! it, and one service's configuration without its credentials. The list is the admin API's
//! own (`Registrar::list`, credentials already stripped), subscribed to `/live/services`.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use muster_ingest::service_table::ServiceView;
use muster_schemas::Health;
use warp::http::StatusCode;
use warp::reply::Response;

use super::i18n::{Lang, Msg};
use super::layout::{self, Nav, columns, document};
use super::paths;
use super::session::Visit;
use super::{Open, Site};
use crate::auth::Viewer;
use crate::problem::Problem;

/// 403 unless the admin: partners never see upstream services.
pub fn admin_only(viewer: &Viewer) -> Result<(), Problem> {
    match viewer {
        Viewer::Admin => Ok(()),
        Viewer::Partner(_) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-only",
            "Only the admin may see the upstream services",
        )),
    }
}

/// Every service, or the one of `event_id`, as the admin API lists them.
pub async fn load(site: &Site, event_id: Option<&str>) -> Result<Vec<ServiceView>, Problem> {
    Ok(site.state.registrar.list(event_id).await?)
}

/// `GET /services`.
pub async fn list_page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        list(&visit, &site, &open, None, "", StatusCode::OK).await
    })
    .await
}

/// The list with the registration form below, holding `text` and `refused` next to it (the
/// registration form's answer when the API refused it).
pub async fn list(
    visit: &Visit,
    site: &Site,
    open: &Open,
    refused: Option<&Problem>,
    text: &str,
    status: StatusCode,
) -> Result<Response, Problem> {
    let services = load(site, None).await?;
    let lang = visit.lang;
    let live = paths::live(paths::SERVICES, &format!("since={}", open.head));
    let main = html! {
        h1 { (lang.t(Msg::Services)) }
        p { (lang.t(Msg::ServicesIntro)) }
        div #services hx-ext="sse" sse-connect=(live) sse-close="bye" {
            div sse-swap="update" hx-swap="none" hidden {}
            (super::overview::live_state(lang))
            (table(lang, Utc::now(), &services, false))
        }
        (super::admin::services::register_form(visit, refused, text))
    };
    let page = document(visit, lang.t(Msg::Services), Some(Nav::Services), &[], main);
    Ok(layout::respond(visit, status, page))
}

/// The table of services (replaced whole by live updates).
pub fn table(lang: Lang, now: DateTime<Utc>, services: &[ServiceView], live: bool) -> Markup {
    html! {
        div #service-table .scroll hx-swap-oob=[live.then_some("true")] {
            table.services {
                caption.sr-only { (lang.t(Msg::Services)) }
                (columns(lang, &[Msg::Event, Msg::Health, Msg::LastSuccess, Msg::Lag, Msg::Failures, Msg::PolledBy, Msg::LastError]))
                tbody {
                    @for s in services {
                        @let id = event_id(s);
                        tr {
                            td { a href=(paths::item(paths::SERVICES, id)) { (id) } }
                            td { (health(lang, s.status.health.as_deref())) }
                            td { (when(lang, now, s.status.last_success_at)) }
                            td { (lag(lang, s.status.lag_seconds)) }
                            td.num { (lang.int(s.status.consecutive_failures.into())) }
                            td { (s.status.polled_by.as_deref().unwrap_or(lang.t(Msg::NotPolled))) }
                            td { (s.status.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            @if services.is_empty() {
                p.empty { (lang.t(Msg::NoServices)) }
            }
        }
    }
}

/// `GET /services/{eventId}`.
pub async fn service_page(event_id: String, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        let event_id = layout::percent_decode(&event_id);
        let Some(s) = load(&site, Some(&event_id)).await?.pop() else {
            return Err(Problem::not_found(
                "No such service",
                format!("no service is registered for event {event_id}"),
            ));
        };
        let lang = visit.lang;
        let now = Utc::now();
        let st = &s.status;
        let main = html! {
            h1 { (lang.t(Msg::Service)) " · " (event_id) }
            dl.facts {
                dt { (lang.t(Msg::Health)) } dd { (health(lang, st.health.as_deref())) }
                @if let Some(r) = &st.health_reason { dt { (lang.t(Msg::Reason)) } dd { (r) } }
                dt { (lang.t(Msg::LastSuccess)) } dd { (when(lang, now, st.last_success_at)) }
                dt { (lang.t(Msg::LastAttempt)) } dd { (when(lang, now, st.last_attempt_at)) }
                dt { (lang.t(Msg::Lag)) } dd { (lag(lang, st.lag_seconds)) }
                dt { (lang.t(Msg::Failures)) } dd { (lang.int(st.consecutive_failures.into())) }
                @if let Some(ms) = st.last_latency_ms { dt { (lang.t(Msg::Latency)) } dd { (lang.int(ms)) " ms" } }
                dt { (lang.t(Msg::PolledBy)) } dd { (st.polled_by.as_deref().unwrap_or(lang.t(Msg::NotPolled))) }
                @if let Some(e) = &st.last_error { dt { (lang.t(Msg::LastError)) } dd { (e) } }
                dt { (lang.t(Msg::Authentication)) } dd { (s.authentication_type) }
                dt { (lang.t(Msg::RegisteredAt)) } dd { (when(lang, now, Some(s.registered_at))) }
            }
            h2 { (lang.t(Msg::Configuration)) }
            p { (lang.t(Msg::ConfigurationNote)) }
            (config(&s.config))
            (super::admin::services::edit_forms(&visit, &event_id, &s.config))
            p {
                a href=(paths::item(paths::EVENTS, &event_id)) { (lang.t(Msg::Event)) }
                " · "
                a href=(paths::to(paths::SERVICES)) { (lang.t(Msg::Services)) }
            }
        };
        let page = document(&visit, lang.t(Msg::Service), Some(Nav::Services), &[], main);
        Ok(layout::respond(&visit, StatusCode::OK, page))
    })
    .await
}

fn event_id(s: &ServiceView) -> &str {
    s.config
        .get("eventId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

/// The configuration as stored (credentials were never in it): scalars as text, the rest as
/// compact JSON.
fn config(c: &serde_json::Value) -> Markup {
    let fields = c.as_object().into_iter().flatten();
    html! {
        dl.facts.config {
            @for (key, value) in fields {
                dt { code { (key) } }
                dd {
                    @match value {
                        serde_json::Value::String(s) => (s),
                        serde_json::Value::Null => "—",
                        v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)) => code { (v) },
                        v => (v),
                    }
                }
            }
        }
    }
}

fn health(lang: Lang, h: Option<&str>) -> Markup {
    let known = h.and_then(|h| h.parse::<Health>().ok());
    let (class, msg) = match known {
        Some(Health::Healthy) => ("healthy", Msg::HealthHealthy),
        Some(Health::Degraded) => ("degraded", Msg::HealthDegraded),
        Some(Health::Down) => ("down", Msg::HealthDown),
        None => ("unknown", Msg::HealthUnknown),
    };
    html! { span class=(format!("health health-{class}")) { (lang.t(msg)) } }
}

fn when(lang: Lang, now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => html! {
            time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) { (lang.ago(at, now)) }
        },
        None => html! { (lang.t(Msg::Never)) },
    }
}

fn lag(lang: Lang, seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{} s", lang.int(s.round() as i64)),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_may_not_see_services() {
        assert!(admin_only(&Viewer::Admin).is_ok());
        let partner = Viewer::Partner(crate::auth::Partner {
            id: uuid::Uuid::nil(),
            name: "p".into(),
            tier: crate::auth::Tier::Partner,
            event_ids: vec!["e1".into()],
            key_prefix: "mk_0123".into(),
            rate: None,
        });
        assert_eq!(
            admin_only(&partner).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn configuration_shows_scalars_as_text_and_the_rest_as_json() {
        let c = serde_json::json!({"eventId": "e1", "pollIntervalSeconds": 30, "event": {"name": "<x>"}, "gone": null});
        let html = config(&c).into_string();
        assert!(html.contains("<dd>e1</dd>"), "{html}");
        assert!(html.contains("<dd>30</dd>"), "{html}");
        assert!(html.contains("&lt;x&gt;"), "escaped: {html}");
        assert!(html.contains("<dd>—</dd>"), "{html}");
    }
}
