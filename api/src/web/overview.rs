//! `GET /`: the overview. Summary cards, then every event the viewer may see as a row (status,
//! occupancy against capacity, people inside, the last hours, active alerts, time of the
//! numbers in the event's own zone). Filters, search and sort are query parameters: links and
//! a form that work without JavaScript, swapped in place by htmx when it runs. The board
//! subscribes to `/live/overview` with the same query and is redrawn from there.

use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};
use warp::http::StatusCode;
use warp::reply::Response;

use super::Site;
use super::board::{self, Board, Filters, Query, Row, Sort};
use super::charts::{bar, sparkline};
use super::i18n::{self, Lang, Msg, zone_label};
use super::layout::{self, Nav, choice};
use super::paths;
use super::session::Visit;
use crate::read::events::Status;
use crate::read::search::{self, MatchedField, Search};

/// `GET /`.
pub async fn page(query: Query, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open| {
        let filters = query.filters();
        let viewer = &open.session.viewer;
        let board = board::load(&open.db, viewer, &filters, &site.reader, None).await?;
        let lang = visit.lang;
        let live = paths::live(
            paths::OVERVIEW_STREAM,
            &format!(
                "{}&since={}",
                filters.query(filters.sort, filters.descending),
                open.head
            ),
        );
        let fragment = board_fragment(lang, Utc::now(), &filters, &board, &live);
        if visit.htmx {
            return Ok(layout::respond(&visit, StatusCode::OK, fragment));
        }
        let main = html! {
            h1 { (lang.t(Msg::Overview)) }
            (filter_form(&visit, &filters, &board))
            (fragment)
        };
        Ok(layout::nav_page(&visit, Nav::Overview, main))
    })
    .await
}

/// The element id of an event's row: its id with anything outside `[A-Za-z0-9_-]` escaped,
/// so any event id makes a valid, unique id.
pub fn row_id(event_id: &str) -> String {
    let mut out = String::from("row-");
    for b in event_id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("_{b:02x}")),
        }
    }
    out
}

fn filter_form(visit: &Visit, f: &Filters, board: &Board) -> Markup {
    let lang = visit.lang;
    html! {
        form.filters method="get" action=(paths::HOME) role="search" aria-label=(lang.t(Msg::Filters))
            hx-get=(paths::HOME) hx-target="#board" hx-select="#board" hx-swap="outerHTML" hx-push-url="true"
            hx-trigger="change, input changed delay:300ms from:#q, submit" {
            div.field {
                label for="q" { (lang.t(Msg::Search)) }
                input #q type="search" name="q" value=[f.search.as_ref().map(Search::text)]
                    maxlength=(search::MAX_CHARS) enterkeyhint="search" autocomplete="off"
                    aria-describedby=[f.search_error.as_ref().map(|_| "q-error")];
                @if let Some(why) = &f.search_error {
                    p.error.field-error #q-error role="alert" { (why) }
                }
            }
            (choice("type", lang.t(Msg::Type), lang.t(Msg::AnyType),
                board.types.iter().map(|t| (t.as_str(), t.as_str())), f.event_type.as_deref()))
            (choice("status", lang.t(Msg::Status), lang.t(Msg::AnyStatus),
                Status::ALL.iter().map(|s| (s.as_str(), i18n::status(lang, *s))),
                f.status.map(Status::as_str)))
            input type="hidden" name="sort" value=(f.sort.as_str());
            input type="hidden" name="dir" value=(if f.descending { "desc" } else { "asc" });
            button type="submit" { (lang.t(Msg::Apply)) }
        }
    }
}

/// The live part: cards and the table, subscribed to `live` (the stream of this query).
pub fn board_fragment(
    lang: Lang,
    now: DateTime<Utc>,
    f: &Filters,
    board: &Board,
    live: &str,
) -> Markup {
    html! {
        div #board hx-ext="sse" sse-connect=(live) sse-close="bye" {
            div sse-swap="update" hx-swap="none" hidden {}
            (live_state(lang))
            (cards(lang, board, false))
            (shown(lang, board, false))
            div.scroll {
                table.events {
                    caption.sr-only { (lang.t(Msg::Events)) }
                    thead { tr {
                        (header(lang, f, Sort::Name, Msg::Event))
                        (header(lang, f, Sort::Status, Msg::Status))
                        (header(lang, f, Sort::Occupancy, Msg::Occupancy))
                        (header(lang, f, Sort::Inside, Msg::Inside))
                        th scope="col" { (lang.t(Msg::LastHours)) }
                        (header(lang, f, Sort::Alerts, Msg::ActiveAlerts))
                        (header(lang, f, Sort::Updated, Msg::Updated))
                    } }
                    (rows(lang, now, board, false))
                }
            }
            (empty(lang, board, false))
            (numbers(lang, board))
            p.note { (lang.t(Msg::Times)) }
        }
    }
}

/// Says whether the live stream is connected (set by app.js from htmx's SSE events); a text,
/// not only a colour.
pub fn live_state(lang: Lang) -> Markup {
    html! {
        p #live-state .live-state role="status" data-state="off"
            data-on=(lang.t(Msg::LiveOn)) data-off=(lang.t(Msg::LiveOff)) {
            (lang.t(Msg::LiveOff))
        }
    }
}

fn header(lang: Lang, f: &Filters, key: Sort, label: Msg) -> Markup {
    let current = f.sort == key;
    // Clicking the current column flips it; another starts in its natural direction.
    let descending = if current {
        !f.descending
    } else {
        Query {
            sort: Some(key.as_str().to_owned()),
            ..Default::default()
        }
        .filters()
        .descending
    };
    let href = format!("/?{}", f.query(key, descending));
    let aria = current.then_some(if f.descending {
        "descending"
    } else {
        "ascending"
    });
    html! {
        th scope="col" aria-sort=[aria] {
            a id=(format!("sort-{}", key.as_str())) href=(href) hx-get=(href) hx-target="#board"
                hx-select="#board" hx-swap="outerHTML" hx-push-url="true" {
                (lang.t(label))
                @if current {
                    span aria-hidden="true" { @if f.descending { " ▼" } @else { " ▲" } }
                    span.sr-only {
                        ", " (lang.t(if f.descending { Msg::SortedDescending } else { Msg::SortedAscending }))
                    }
                }
            }
        }
    }
}

/// `hx-swap-oob="true"` on an element sent by a live update, replacing its namesake.
fn oob(yes: bool) -> Option<&'static str> {
    yes.then_some("true")
}

/// The summary cards (replaced whole by live updates).
pub fn cards(lang: Lang, board: &Board, live: bool) -> Markup {
    let s = &board.summary;
    let card = |id: &str, label: Msg, value: String| {
        html! {
            div.card id=(id) {
                p.label { (lang.t(label)) }
                p.value { (value) }
            }
        }
    };
    html! {
        section #cards .cards aria-label=(lang.t(Msg::Overview)) hx-swap-oob=[oob(live)] {
            (card("card-live", Msg::EventsLive, lang.int(board.live as i64)))
            (card("card-inside", Msg::PeopleInside, lang.int(s.total_attendees)))
            (card("card-rate", Msg::MeanAttendance, lang.percent(s.average_attendance_rate)))
            (card("card-alerts", Msg::ActiveAlerts, lang.int(s.active_alerts)))
        }
    }
}

/// "N of M events shown".
pub fn shown(lang: Lang, board: &Board, live: bool) -> Markup {
    html! {
        p #shown .shown hx-swap-oob=[oob(live)] {
            (lang.int(board.rows.len() as i64)) " / " (lang.int(board.visible as i64)) " "
            (lang.t(Msg::Showing))
        }
    }
}

/// "No event matches", hidden while some do.
pub fn empty(lang: Lang, board: &Board, live: bool) -> Markup {
    html! {
        p #empty .empty hidden[!board.rows.is_empty()] hx-swap-oob=[oob(live)] {
            (lang.t(Msg::NoEvents))
        }
    }
}

/// The table's body; sent live inside a `<template>`, where a `<tbody>` may stand alone.
pub fn rows(lang: Lang, now: DateTime<Utc>, board: &Board, live: bool) -> Markup {
    let body = html! {
        tbody #rows hx-swap-oob=[oob(live)] {
            @for r in &board.rows { (row(lang, now, r, false)) }
        }
    };
    if live {
        html! { template { (body) } }
    } else {
        body
    }
}

/// One event's row.
pub fn row(lang: Lang, now: DateTime<Utc>, r: &Row, live: bool) -> Markup {
    let e = &r.event;
    let zone = e.zone();
    let stale = e.status == Status::Stale;
    let values: Vec<i64> = r.recent.iter().flatten().copied().collect();
    let spark_label = format!(
        "{}: {}",
        lang.t(Msg::LastHours),
        values
            .iter()
            .map(|v| lang.int(*v))
            .collect::<Vec<_>>()
            .join(", ")
    );
    html! {
        tr id=(row_id(&e.event_id)) .stale[stale] hx-swap-oob=[oob(live)] {
            th scope="row" {
                a href=(paths::item(paths::EVENTS, &e.event_id)) { (e.name) }
                span.type { (e.event_type) }
                // A search that matched what the row does not show says where it matched.
                @match (e.matched, &e.venue) {
                    (Some(MatchedField::Venue), Some(venue)) => {
                        span.sub.matched { (lang.t(Msg::Venue)) ": " (venue) }
                    }
                    (Some(MatchedField::Id), _) => {
                        span.sub.matched { (lang.t(Msg::EventId)) ": " (e.event_id) }
                    }
                    _ => {}
                }
            }
            td data-label=(lang.t(Msg::Status)) {
                span class=(format!("status status-{}", e.status.as_str())) {
                    @if stale { span aria-hidden="true" { "⚠ " } }
                    (i18n::status(lang, e.status))
                }
            }
            td.occupancy data-label=(lang.t(Msg::Occupancy)) {
                @match (e.occupancy(), e.capacity) {
                    (Some(share), Some(cap)) => {
                        (bar(share))
                        span.num { (lang.percent(share)) }
                        span.sub { (lang.t(Msg::OfCapacity)) " " (lang.int(cap)) }
                    }
                    _ => { span.sub { (lang.t(Msg::NoCapacity)) } }
                }
            }
            td.num.inside data-label=(lang.t(Msg::Inside)) {
                @match &e.realtime {
                    Some(rt) => { (lang.int(rt.current_attendees)) }
                    None => { span.sub { (lang.t(Msg::NoData)) } }
                }
            }
            td data-label=(lang.t(Msg::LastHours)) { (sparkline(&values, &spark_label)) }
            td.num data-label=(lang.t(Msg::ActiveAlerts)) {
                @if r.active_alerts > 0 {
                    a href=(format!("{}?event={}", paths::to(paths::ALERTS), layout::url_encode(&e.event_id)))
                        class=(format!("count severity-{}", r.worst.map_or("warning", |s| s.as_str()))) {
                        (lang.int(r.active_alerts as i64))
                        span.sr-only { " " (r.worst.map_or("", |s| i18n::severity(lang, s))) }
                    }
                } @else { "0" }
            }
            td.updated data-label=(lang.t(Msg::Updated)) {
                @if let Some(rt) = &e.realtime {
                    time datetime=(rt.observed_at.to_rfc3339()) { (lang.time(rt.observed_at, zone, now)) }
                    " " span.zone { (zone_label(zone)) }
                    span.sub { (lang.ago(rt.observed_at, now)) }
                } @else { "–" }
            }
        }
    }
}

/// The sparklines' numbers as a table, columns from the oldest step to now.
fn numbers(lang: Lang, board: &Board) -> Markup {
    let steps = board::SPAN_BUCKETS as i64;
    let label = |i: i64| {
        let before = (steps - 1 - i) * board::STEP_MINUTES;
        let at = board.since + TimeDelta::minutes(i * board::STEP_MINUTES);
        (format!("−{}:{:02}", before / 60, before % 60), at)
    };
    html! {
        details.numbers {
            summary { (lang.t(Msg::SparklineNumbers)) }
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { (lang.t(Msg::Event)) }
                        @for i in 0..steps {
                            @let (text, at) = label(i);
                            th scope="col" { time datetime=(at.to_rfc3339()) { (text) } }
                        }
                    } }
                    tbody {
                        @for r in &board.rows {
                            tr {
                                th scope="row" { (r.event.name) }
                                @for v in &r.recent {
                                    td.num { @match v { Some(v) => { (lang.int(*v)) } None => { "–" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ids_are_valid_and_distinct() {
        assert_eq!(row_id("expo-2026"), "row-expo-2026");
        assert_eq!(row_id("a.b c"), "row-a_2eb_20c");
        assert_ne!(row_id("a_b"), row_id("a.b"));
    }
}
