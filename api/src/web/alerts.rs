//! `GET /alerts`: active alerts and those raised in the last day, across the events the viewer
//! may see, newest first; filtered by severity, kind and event, each linking to its event.
//! Times are in each event's own zone. The list subscribes to `/live/alerts` with the same
//! query and is redrawn from there.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Offset, Utc};
use maud::{Markup, html};
use muster_schemas::{AlertKind, Severity};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::Site;
use super::i18n::{self, Lang, Msg, zone_label};
use super::layout::{self, Nav, choice, columns, url_encode};
use super::paths;
use super::session::Visit;
use crate::auth::Viewer;
use crate::problem::Problem;
use crate::read::Client;
use crate::read::Reader;
use crate::read::alerts::{self, Alert};
use crate::read::events::{self, Event};

/// The most alerts the page lists.
const LIMIT: i64 = 500;

/// The query string; values it does not know are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Query {
    pub severity: Option<String>,
    pub kind: Option<String>,
    pub event: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub severity: Option<Severity>,
    pub kind: Option<AlertKind>,
    pub event: Option<String>,
}

impl Query {
    pub fn filters(&self) -> Filters {
        Filters {
            severity: self.severity.as_deref().and_then(|s| s.parse().ok()),
            kind: self.kind.as_deref().and_then(|s| s.parse().ok()),
            event: self
                .event
                .as_deref()
                .filter(|e| !e.is_empty() && !e.contains('\0'))
                .map(str::to_owned),
        }
    }
}

impl Filters {
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.severity {
            parts.push(format!("severity={}", s.as_str()));
        }
        if let Some(k) = self.kind {
            parts.push(format!("kind={}", k.as_str()));
        }
        if let Some(e) = &self.event {
            parts.push(format!("event={}", url_encode(e)));
        }
        parts.join("&")
    }

    fn keeps(&self, a: &Alert) -> bool {
        self.severity.is_none_or(|s| a.severity == s)
            && self.kind.is_none_or(|k| a.kind == k)
            && self.event.as_ref().is_none_or(|e| &a.event_id == e)
    }
}

/// The alerts shown, with the events they belong to.
pub struct List {
    pub alerts: Vec<Alert>,
    pub events: HashMap<String, Event>,
}

/// The viewer's alerts under `filters`, newest first.
pub async fn load(
    db: &Client,
    viewer: &Viewer,
    filters: &Filters,
    reader: &Reader,
) -> Result<List, Problem> {
    let filter = events::Filter {
        ids: viewer.event_ids(),
        event_type: None,
        search: None,
    };
    let events: HashMap<String, Event> = reader
        .events_on(db, filter)
        .await?
        .into_iter()
        .map(|e| (e.event_id.clone(), e))
        .collect();
    let ids: Vec<String> = match &filters.event {
        Some(e) if events.contains_key(e) => vec![e.clone()],
        Some(_) => Vec::new(),
        None => events.keys().cloned().collect(),
    };
    let since = Utc::now() - Duration::hours(24);
    let mut alerts = alerts::newest_active_or_since(db, &ids, since, LIMIT).await?;
    alerts.retain(|a| filters.keeps(a));
    Ok(List { alerts, events })
}

/// `GET /alerts`.
pub async fn page(query: Query, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open| {
        let filters = query.filters();
        let list = load(&open.db, &open.session.viewer, &filters, &site.reader).await?;
        let lang = visit.lang;
        let fragment = list_fragment(lang, Utc::now(), &filters, &list, open.head);
        if visit.htmx {
            return Ok(layout::respond(&visit, StatusCode::OK, fragment));
        }
        let main = html! {
            h1 { (lang.t(Msg::Alerts)) }
            p { (lang.t(Msg::AlertsIntro)) }
            (filter_form(lang, &filters))
            (fragment)
        };
        Ok(layout::nav_page(&visit, Nav::Alerts, main))
    })
    .await
}

fn filter_form(lang: Lang, f: &Filters) -> Markup {
    html! {
        form.filters method="get" action=(paths::to(paths::ALERTS)) aria-label=(lang.t(Msg::Filters))
            hx-get=(paths::to(paths::ALERTS)) hx-target="#alert-list" hx-select="#alert-list" hx-swap="outerHTML"
            hx-push-url="true" hx-trigger="change, submit" {
            (choice("severity", lang.t(Msg::Severity), lang.t(Msg::AnySeverity),
                Severity::ALL.iter().map(|s| (s.as_str(), i18n::severity(lang, *s))),
                f.severity.map(Severity::as_str)))
            (choice("kind", lang.t(Msg::Kind), lang.t(Msg::AnyKind),
                AlertKind::ALL.iter().map(|k| (k.as_str(), i18n::alert_kind(lang, *k))),
                f.kind.map(AlertKind::as_str)))
            @if let Some(e) = &f.event {
                input type="hidden" name="event" value=(e);
            }
            button type="submit" { (lang.t(Msg::Apply)) }
        }
    }
}

/// The live part: the list, subscribed to the stream of this query.
pub fn list_fragment(
    lang: Lang,
    now: DateTime<Utc>,
    f: &Filters,
    list: &List,
    head: i64,
) -> Markup {
    let live = paths::live(paths::ALERTS, &format!("{}&since={head}", f.query()));
    html! {
        div #alert-list hx-ext="sse" sse-connect=(live) sse-close="bye" {
            div sse-swap="update" hx-swap="none" hidden {}
            (super::overview::live_state(lang))
            (table(lang, now, list, false))
        }
    }
}

/// The table (replaced whole by live updates).
pub fn table(lang: Lang, now: DateTime<Utc>, list: &List, live: bool) -> Markup {
    html! {
        div #alert-table .scroll hx-swap-oob=[live.then_some("true")] {
            table.alerts {
                caption.sr-only { (lang.t(Msg::Alerts)) }
                (columns(lang, &[Msg::Raised, Msg::Event, Msg::Severity, Msg::Kind, Msg::Message, Msg::State]))
                tbody {
                    @for a in &list.alerts { (row(lang, now, a, list.events.get(&a.event_id))) }
                }
            }
            @if list.alerts.is_empty() {
                p.empty { (lang.t(Msg::NoAlerts)) }
            }
        }
    }
}

fn row(lang: Lang, now: DateTime<Utc>, a: &Alert, event: Option<&Event>) -> Markup {
    let zone = event.map(Event::zone).unwrap_or(Utc.fix());
    let at = |t: DateTime<Utc>| {
        html! {
            time datetime=(t.to_rfc3339()) { (lang.time(t, zone, now)) }
            " " span.zone { (zone_label(zone)) }
        }
    };
    html! {
        tr id=(format!("alert-{}", url_encode(&a.alert_id).replace('%', "_"))) .resolved[!a.is_active()] {
            td { (at(a.raised_at)) }
            td {
                a href=(paths::item(paths::EVENTS, &a.event_id)) {
                    (event.map_or(a.event_id.as_str(), |e| e.name.as_str()))
                }
            }
            td { span class=(format!("severity severity-{}", a.severity.as_str())) { (i18n::severity(lang, a.severity)) } }
            td { (i18n::alert_kind(lang, a.kind)) @if let Some(s) = &a.subject { " · " (s) } }
            td { (a.message) }
            td {
                span class=(format!("state state-{}", a.state.as_str())) { (i18n::alert_state(lang, a.state)) }
                @if let Some(r) = a.resolved_at {
                    span.sub { (at(r)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_filters_read_leniently() {
        let f = Query {
            severity: Some("critical".into()),
            kind: Some("nope".into()),
            event: Some("e1".into()),
        }
        .filters();
        assert_eq!(f.severity, Some(Severity::Critical));
        assert_eq!(f.kind, None);
        assert_eq!(f.query(), "severity=critical&event=e1");
    }
}
