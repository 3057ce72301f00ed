//! `GET /webhooks/{id}`: one endpoint, its forms (send a test event, change event types,
//! rotate the secret, resume, delete) and its delivery log, newest first, filtered by state
//! and event type. Each message shows its attempts and payload (escaped) and can be replayed;
//! a range can be replayed too. The log subscribes to `/live/deliveries`, which redraws it
//! when it reads differently (attempts are not in the change feed, so it looks every
//! [`LOG_EVERY`]).

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use muster_webhooks::EventType;
use muster_webhooks::log::{DeliveryDetail, DeliveryFilter, DeliveryState};
use muster_webhooks::subscriptions::Endpoint;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::texts::P;
use super::webhooks::{state, type_boxes, types};
use super::{owner, refusal, store, when};
use crate::auth::Viewer;
use crate::problem::Problem;
use crate::web::i18n::Lang;
use crate::web::layout::{self, Nav, choice, columns, csrf_field, document, url_encode};
use crate::web::paths;
use crate::web::session::Visit;
use crate::web::{Open, Site};

/// How often an open log looks for new attempts.
pub const LOG_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// The most messages the page shows.
const LIMIT: i64 = 100;

/// The page's query (and its stream's): values it does not know are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    pub state: Option<String>,
    #[serde(rename = "eventType")]
    pub event_type: Option<String>,
    /// The stream's endpoint.
    pub endpoint: Option<String>,
}

impl LogQuery {
    pub fn filter(&self) -> DeliveryFilter {
        DeliveryFilter {
            state: self.state.as_deref().and_then(|s| s.parse().ok()),
            event_type: self.event_type.as_deref().and_then(EventType::parse),
            limit: LIMIT,
        }
    }

    /// The filter as a query string (for the stream).
    fn query(&self) -> String {
        let f = self.filter();
        let mut parts = Vec::new();
        if let Some(s) = f.state {
            parts.push(format!("state={}", s.as_str()));
        }
        if let Some(t) = f.event_type {
            parts.push(format!("eventType={}", t.as_str()));
        }
        parts.join("&")
    }
}

/// A refused form of the page: its action and the API's message, shown next to that form.
#[derive(Debug)]
pub struct Shown {
    pub action: Option<String>,
    pub message: String,
}

impl Shown {
    fn at(&self, action: &str) -> Option<&str> {
        (self.action.as_deref() == Some(action)).then_some(self.message.as_str())
    }
}

/// `GET /webhooks/{id}`.
pub async fn page(id: String, q: LogQuery, visit: Visit, site: Site) -> Response {
    let id = layout::percent_decode(&id);
    site.page(&visit, async |open: Open| {
        draw(&visit, &site, &open, &id, &q, None).await
    })
    .await
}

/// The endpoint page, with `shown`'s refusal next to its form (then answered 422).
pub async fn draw(
    visit: &Visit,
    site: &Site,
    open: &Open,
    id: &str,
    q: &LogQuery,
    shown: Option<&Shown>,
) -> Result<Response, Problem> {
    let owner = owner(&open.session.viewer)?;
    let e = store(site).get(&owner, id).await?;
    let log = store(site).log(&owner, id, q.filter()).await?;
    let lang = visit.lang;
    let at = |action: &str| shown.and_then(|s| s.at(action));
    let form = |action: &'static str, body: Markup| {
        html! {
            form.portal-form method="post" action=(paths::item(paths::WEBHOOKS, id)) {
                (csrf_field(visit))
                input type="hidden" name="action" value=(action);
                (body)
            }
        }
    };
    let live = paths::live(
        paths::DELIVERIES_STREAM,
        &format!(
            "endpoint={}&{}&since={}",
            url_encode(id),
            q.query(),
            open.head
        ),
    );
    let main = html! {
        h1 { (lang.t(P::Webhook)) " · " span.url { (e.url) } }
        div #why { (why(lang, &e, &log)) }
        dl.facts {
            dt { (lang.t(P::Url)) } dd.url { (e.url) }
            dt { (lang.t(P::EventTypes)) } dd { (types(&e.event_types)) }
            dt { (lang.t(P::State)) } dd { (state(lang, &e)) }
            dt { (lang.t(P::Created)) } dd { (when(lang, e.created_at)) }
            @if let Some(until) = e.previous_secret_until {
                dt { (lang.t(P::PreviousUntil)) } dd { (when(lang, until)) }
            }
        }
        div.forms {
            section {
                h2 { (lang.t(P::SendTest)) }
                (form("test", html! {
                    p.note { (lang.t(P::SendTestHelp)) }
                    div.field {
                        label for="event_type" { (lang.t(P::Type)) }
                        select #event_type name="event_type" required {
                            @for t in EventType::ALL { option value=(t.as_str()) { (t.as_str()) } }
                        }
                    }
                    (refusal("test-error", at("test")))
                    button type="submit" { (lang.t(P::Send)) }
                }))
            }
            section {
                h2 { (lang.t(P::ChangeTypes)) }
                (form("types", html! {
                    (type_boxes(lang, &e.event_types, at("types")))
                    button type="submit" { (lang.t(P::Save)) }
                }))
            }
            section {
                h2 { (lang.t(P::Rotate)) }
                (form("rotate", html! {
                    div.field {
                        label for="grace_seconds" { (lang.t(P::Grace)) }
                        select #grace_seconds name="grace_seconds" {
                            option value="0" { (lang.t(P::GraceNone)) }
                            option value="3600" selected { (lang.t(P::GraceHour)) }
                            option value="86400" { (lang.t(P::GraceDay)) }
                        }
                    }
                    (refusal("rotate-error", at("rotate")))
                    button type="submit" { (lang.t(P::RotateButton)) }
                }))
            }
            @if e.disabled_at.is_some() {
                section {
                    h2 { (lang.t(P::Enable)) }
                    (form("enable", html! { button type="submit" { (lang.t(P::Enable)) } }))
                }
            }
            section {
                h2 { (lang.t(P::Delete)) }
                (form("delete", html! {
                    p.note { (lang.t(P::DeleteHelp)) }
                    button.danger type="submit" { (lang.t(P::DeleteButton)) }
                }))
            }
        }
        h2 #deliveries { (lang.t(P::Deliveries)) }
        p.note { (lang.t(P::DeliveriesIntro)) }
        form.filters method="get" action=(paths::item(paths::WEBHOOKS, id)) aria-label=(lang.t(P::Deliveries)) {
            (choice("state", lang.t(P::State), lang.t(P::AnyState),
                DeliveryState::ALL.iter().map(|s| (s.as_str(), state_text(lang, *s))),
                q.filter().state.map(DeliveryState::as_str)))
            (choice("eventType", lang.t(P::Type), lang.t(P::AnyType),
                EventType::ALL.iter().map(|t| (t.as_str(), t.as_str())),
                q.filter().event_type.map(EventType::as_str)))
            button type="submit" { (lang.t(P::Apply)) }
        }
        (refusal("replay-error", at("replay")))
        div #delivery-log hx-ext="sse" sse-connect=(live) sse-close="bye" {
            div sse-swap="update" hx-swap="none" hidden {}
            (crate::web::overview::live_state(lang))
            (table(lang, visit.csrf(), id, &log, false))
        }
        section {
            h2 { (lang.t(P::ReplayRange)) }
            (form("replay", html! {
                p.note { (lang.t(P::ReplayRangeHelp)) }
                div.filters {
                    div.field { label for="from" { (lang.t(P::From)) } input #from type="datetime-local" name="from" required; }
                    div.field { label for="to" { (lang.t(P::To)) } input #to type="datetime-local" name="to"; }
                    button type="submit" { (lang.t(P::Replay)) }
                }
            }))
        }
    };
    let status = if shown.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = document(visit, lang.t(P::Webhook), Some(Nav::Webhooks), &[], main);
    Ok(layout::respond(visit, status, page))
}

/// Why a failing or disabled endpoint fails, in one line: the reason it was disabled, or the
/// last failed attempt's answer.
pub fn why(lang: Lang, e: &Endpoint, log: &[DeliveryDetail]) -> Markup {
    let last_failure = log
        .iter()
        .filter_map(|d| d.attempt_log.last())
        .filter(|a| !a.status.is_some_and(|s| (200..300).contains(&s)))
        .max_by_key(|a| a.at);
    let cause = last_failure.map(|a| match (&a.error, a.status) {
        (Some(err), _) => err.clone(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => lang.t(P::NoAnswer).to_owned(),
    });
    html! {
        @if let Some(reason) = &e.disabled_reason {
            p.error.why role="status" { strong { (lang.t(P::Disabled)) ": " } (reason) }
        } @else if let (Some(since), Some(cause)) = (e.failing_since, cause) {
            p.error.why role="status" {
                strong { (lang.t(P::FailingSince)) " " (when(lang, since)) ": " } (cause)
            }
        }
    }
}

/// The log (replaced whole by live updates).
pub fn table(lang: Lang, csrf: &str, id: &str, log: &[DeliveryDetail], live: bool) -> Markup {
    html! {
        div #delivery-table .scroll hx-swap-oob=[live.then_some("true")] {
            table.deliveries {
                caption.sr-only { (lang.t(P::Deliveries)) }
                (columns(lang, &[P::Occurred, P::Type, P::State, P::Attempts, P::LastResult, P::NextAttempt, P::Replay]))
                tbody {
                    @for d in log { (row(lang, csrf, id, d)) }
                }
            }
            @if log.is_empty() { p.empty { (lang.t(P::NoDeliveries)) } }
        }
    }
}

fn row(lang: Lang, csrf: &str, id: &str, detail: &DeliveryDetail) -> Markup {
    let d = &detail.delivery;
    let result = match (&d.last_error, d.last_status) {
        (Some(e), _) => e.clone(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => "—".to_owned(),
    };
    html! {
        tr.delivery id=(format!("delivery-{}", d.id)) data-state=(d.state.as_str()) {
            td {
                (when(lang, d.occurred_at))
                details {
                    summary { (lang.t(P::Details)) }
                    ol.attempts {
                        @for a in &detail.attempt_log {
                            li.attempt {
                                (time(a.at)) " · "
                                @match (a.status, &a.error) {
                                    (Some(s), _) => { "HTTP " (s) }
                                    (None, Some(e)) => { (e) }
                                    (None, None) => { (lang.t(P::NoAnswer)) }
                                }
                                " · " (a.latency_ms) " ms"
                            }
                        }
                    }
                    p.sub { (lang.t(P::Payload)) }
                    pre.payload { code { (serde_json::to_string_pretty(&detail.payload).unwrap_or_default()) } }
                }
            }
            td {
                code { (d.event_type.as_str()) }
                @if d.test { " " span.tag.test { (lang.t(P::Test)) } }
                @if d.replay_of.is_some() { " " span.tag { (lang.t(P::Replayed)) } }
                span.sub { (d.event_id) " #" (d.sequence) }
            }
            td { span class=(format!("state delivery-{}", d.state.as_str())) { (state_text(lang, d.state)) } }
            td.num.attempt-count { (d.attempts) }
            td.result {
                (result)
                @if let Some(ms) = d.last_latency_ms { span.sub { (ms) " ms" } }
            }
            td { @if let Some(n) = d.next_attempt_at { (time(n)) } @else { "—" } }
            td {
                form method="post" action=(paths::item(paths::WEBHOOKS, id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="action" value="replay";
                    input type="hidden" name="delivery_id" value=(d.id);
                    button.replay type="submit" aria-label=(format!("{} {}", lang.t(P::Replay), d.id)) { (lang.t(P::Replay)) }
                }
            }
        }
    }
}

/// A time in UTC, to the second (attempts come seconds apart).
fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%H:%M:%S")) " UTC" } }
}

fn state_text(lang: Lang, s: DeliveryState) -> &'static str {
    lang.t(match s {
        DeliveryState::Pending => P::StatePending,
        DeliveryState::Delivered => P::StateDelivered,
        DeliveryState::Failed => P::StateFailed,
        DeliveryState::Cancelled => P::StateCancelled,
    })
}

/// The live log of one endpoint: the table and the one-line cause again when they read
/// differently.
pub struct DeliveriesLive {
    pub lang: Lang,
    pub site: Site,
    pub endpoint: String,
    pub query: LogQuery,
    /// The session's CSRF token, for the replay buttons redrawn.
    pub csrf: String,
    /// The last fragments sent.
    pub last: Option<String>,
}

impl DeliveriesLive {
    pub async fn redraw(&mut self, viewer: &Viewer) -> Result<Option<String>, Problem> {
        let owner = owner(viewer)?;
        let e = store(&self.site).get(&owner, &self.endpoint).await?;
        let log = store(&self.site)
            .log(&owner, &self.endpoint, self.query.filter())
            .await?;
        let mut html = table(self.lang, &self.csrf, &self.endpoint, &log, true).into_string();
        html.push_str(&format!(
            r#"<div id="why" hx-swap-oob="true">{}</div>"#,
            why(self.lang, &e, &log).into_string()
        ));
        Ok(crate::web::live::unless_sent(&mut self.last, html))
    }
}
