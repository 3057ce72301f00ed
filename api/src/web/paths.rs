//! Where each page lives, written once: the route declarations (`web/mod.rs`, `account`,
//! `live`, `assets`) match these segments, and links, forms, redirects and the request
//! metrics' path templates ([`templates`]) are made from them.

use warp::Filter;

use super::layout::url_encode;

pub const SIGN_IN: &str = "sign-in";
pub const SIGN_OUT: &str = "sign-out";
pub const LANGUAGE: &str = "language";
pub const ALERTS: &str = "alerts";
/// `/events/{eventId}`: one event's page.
pub const EVENTS: &str = "events";
/// `/services` (the list) and `/services/{eventId}` (one service).
pub const SERVICES: &str = "services";
/// The admin's console: `/partners` (the list and the create form), `/partners/{id}` (one
/// partner), `/audit`, `/dead-letters`.
pub const PARTNERS: &str = "partners";
pub const AUDIT: &str = "audit";
pub const DEAD_LETTERS: &str = "dead-letters";
/// The forms acting on one item: `POST /{page}/{id}/{action}`.
pub const GRANTS: &str = "grants";
pub const ROTATE: &str = "rotate";
pub const REVOKE: &str = "revoke";
pub const REMOVE: &str = "remove";
/// The partner portal: `/webhooks` (the list, `POST` creates), `/webhooks/{id}` (one
/// endpoint with its delivery log; `POST` its forms), `/event-types`, `/key`.
pub const WEBHOOKS: &str = "webhooks";
pub const EVENT_TYPES: &str = "event-types";
pub const KEY: &str = "key";
/// The analyst pages (the admin and premium partners): `/sql` (the query box; `POST` runs it)
/// and `POST /sql/download` (its answer as a file).
pub const SQL: &str = "sql";
pub const DOWNLOAD: &str = "download";
/// `/patterns?eventType=…` (attendance by weekday × hour) and `/forecasts` (forecasts, ROI).
pub const PATTERNS: &str = "patterns";
pub const FORECASTS: &str = "forecasts";
pub const ASSETS: &str = "assets";
/// `/live/{stream}`: a page's live stream.
pub const LIVE: &str = "live";

/// The live streams' names: the overview's, the event page's, and the list pages' (named as
/// their pages).
pub const OVERVIEW_STREAM: &str = "overview";
pub const EVENT_STREAM: &str = "event";
/// One webhook's delivery log.
pub const DELIVERIES_STREAM: &str = "deliveries";
const STREAMS: [&str; 5] = [
    OVERVIEW_STREAM,
    ALERTS,
    SERVICES,
    EVENT_STREAM,
    DELIVERIES_STREAM,
];

/// The overview.
pub const HOME: &str = "/";

/// The route filter of `/{page}` exactly.
pub fn at(page: &'static str) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path(page).and(warp::path::end())
}

/// The route filter of `/{page}/{sub}` exactly.
pub fn sub_at(
    page: &'static str,
    sub: &'static str,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path(page).and(warp::path(sub)).and(warp::path::end())
}

/// The route filter of `/{page}/{id}`, extracting the id as it arrived (percent-encoded).
pub fn item_at(
    page: &'static str,
) -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    warp::path(page)
        .and(warp::path::param())
        .and(warp::path::end())
}

/// The route filter of `POST /{page}/{id}/{action}`, extracting the id as it arrived.
pub fn action_at(
    page: &'static str,
    action: &'static str,
) -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    warp::path(page)
        .and(warp::path::param())
        .and(warp::path(action))
        .and(warp::path::end())
}

/// `/{page}/{id}/{action}`, the id percent-encoded.
pub fn action(page: &str, id: &str, action: &str) -> String {
    format!("{}/{action}", item(page, id))
}

/// `/{page}`, for links, forms and redirects.
pub fn to(page: &str) -> String {
    format!("/{page}")
}

/// `/{page}/{id}`, the id percent-encoded.
pub fn item(page: &str, id: &str) -> String {
    format!("/{page}/{}", url_encode(id))
}

/// `/live/{stream}?{query}`.
pub fn live(stream: &str, query: &str) -> String {
    format!("/{LIVE}/{stream}?{query}")
}

/// Every page's path template and methods, for the request metrics and `Allow` (the JSON
/// routes' are in the OpenAPI document).
pub fn templates() -> Vec<(String, &'static str)> {
    let mut all = vec![
        (HOME.to_owned(), "GET"),
        (to(SIGN_IN), "GET, POST"),
        (to(SIGN_OUT), "POST"),
        (to(LANGUAGE), "POST"),
        (to(ALERTS), "GET"),
        (to(SERVICES), "GET, POST"),
        (to(PARTNERS), "GET, POST"),
        (to(AUDIT), "GET"),
        (to(DEAD_LETTERS), "GET"),
        (format!("/{EVENTS}/{{eventId}}"), "GET"),
        (format!("/{SERVICES}/{{eventId}}"), "GET"),
        (format!("/{SERVICES}/{{eventId}}/{REMOVE}"), "POST"),
        (format!("/{PARTNERS}/{{id}}"), "GET"),
        (format!("/{PARTNERS}/{{id}}/{GRANTS}"), "POST"),
        (format!("/{PARTNERS}/{{id}}/{ROTATE}"), "POST"),
        (format!("/{PARTNERS}/{{id}}/{REVOKE}"), "POST"),
        (to(WEBHOOKS), "GET, POST"),
        (format!("/{WEBHOOKS}/{{id}}"), "GET, POST"),
        (to(EVENT_TYPES), "GET"),
        (to(KEY), "GET, POST"),
        (to(SQL), "GET, POST"),
        (format!("/{SQL}/{DOWNLOAD}"), "POST"),
        (to(PATTERNS), "GET"),
        (to(FORECASTS), "GET"),
        (format!("/{ASSETS}/{{file}}"), "GET"),
    ];
    all.extend(STREAMS.map(|s| (format!("/{LIVE}/{s}"), "GET")));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_made_from_the_segments_and_encode_ids() {
        assert_eq!(to(ALERTS), "/alerts");
        assert_eq!(item(EVENTS, "expo 2026/b"), "/events/expo%202026%2Fb");
        assert_eq!(live(ALERTS, "since=4"), "/live/alerts?since=4");
        let templates: Vec<String> = templates().into_iter().map(|(t, _)| t).collect();
        assert!(templates.contains(&"/services/{eventId}".to_owned()));
        assert!(templates.contains(&"/live/event".to_owned()));
        let mut unique = templates.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), templates.len(), "each template once");
    }
}
