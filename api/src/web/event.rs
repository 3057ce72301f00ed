//! `GET /events/{eventId}`: a placeholder for the event page, so the overview's and the alerts'
//! links lead somewhere and a page for an event not granted answers 403 (unknown: 404). It
//! shows the event's latest numbers only; the charts, gates, alert timeline and insights are
//! the event page's own work, still to come.

use chrono::Utc;
use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::Site;
use super::i18n::{self, Msg, zone_label};
use super::layout::{self, document, percent_decode, url_encode};
use super::session::Visit;
use crate::problem::Problem;
use crate::read::events;

/// `GET /events/{eventId}`.
pub async fn page(event_id: String, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open| {
        // Path segments arrive percent-encoded.
        let event_id = percent_decode(&event_id);
        open.session.viewer.check(&event_id)?;
        let ids = [event_id.clone()];
        let filter = events::Filter {
            ids: Some(&ids),
            event_type: None,
        };
        let Some(event) = events::list(&open.db, filter, site.stale_after).await?.pop() else {
            return Err(Problem::not_found("No such event", format!("no event {event_id}")));
        };
        let lang = visit.lang;
        let now = Utc::now();
        let zone = event.zone();
        let main = html! {
            h1 { (event.name) }
            p.placeholder role="note" { (lang.t(Msg::EventPlaceholder)) }
            dl.facts {
                dt { (lang.t(Msg::Status)) }
                dd { span class=(format!("status status-{}", event.status.as_str())) { (i18n::status(lang, event.status)) } }
                dt { (lang.t(Msg::Type)) } dd { (event.event_type) }
                dt { (lang.t(Msg::TimeZone)) } dd { (zone_label(zone)) }
                @if let Some(c) = event.capacity {
                    dt { (lang.t(Msg::Capacity)) } dd { (lang.int(c)) }
                }
                @if let Some(rt) = &event.realtime {
                    dt { (lang.t(Msg::Inside)) } dd { (lang.int(rt.current_attendees)) }
                    dt { (lang.t(Msg::Registered)) } dd { (lang.int(rt.total_registered)) }
                    dt { (lang.t(Msg::AttendanceRate)) } dd { (lang.percent(rt.attendance_rate)) }
                    dt { (lang.t(Msg::Updated)) }
                    dd {
                        time datetime=(rt.observed_at.to_rfc3339()) { (lang.time(rt.observed_at, zone, now)) }
                        " " (zone_label(zone))
                    }
                }
            }
            p { a href=(format!("/alerts?event={}", url_encode(&event.event_id))) { (lang.t(Msg::Alerts)) } }
            p { a href="/" { (lang.t(Msg::BackToOverview)) } }
        };
        let page = document(&visit, &event.name, None, &[], main);
        Ok(layout::respond(&visit, StatusCode::OK, page))
    })
    .await
}
