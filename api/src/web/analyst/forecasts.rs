//! `GET /forecasts`: each upcoming or ongoing event's forecast (final attendance and show-up
//! rate with their intervals, the peak) beside the backtest error of the method, then the ROI
//! per event and per type. Read as `GET /api/premium/events/{id}/forecast` and
//! `GET /api/premium/analytics/roi` read them ([`forecasts_of`], [`RoiSummary::read`]): a
//! partner sees its own events, the admin every event.

use maud::{Markup, html};
use muster_analytics::insights::forecast::{Estimate, Forecast};
use muster_analytics::insights::roi::Roi;
use warp::reply::Response;

use super::analyst;
use super::texts::A;
use crate::resources::insights::{RoiSummary, forecasts_of};
use crate::web::i18n::{Lang, Msg};
use crate::web::layout::{self, Nav};
use crate::web::session::Visit;
use crate::web::{Open, Site, paths};

/// `GET /forecasts`.
pub async fn page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        analyst(&open.session.viewer)?;
        let lang = visit.lang;
        let events = open.session.viewer.event_ids();
        let forecasts = forecasts_of(&open.db, events).await?;
        let roi = RoiSummary::read(&open.db, events).await?;
        let main = html! {
            h1 { (lang.t(Msg::Forecasts)) }
            p { (lang.t(A::ForecastsIntro)) }
            @if let Some(at) = roi.computed_at {
                p.note { (lang.t(A::ComputedAt)) " " time datetime=(at.to_rfc3339()) { (lang.ago(at, chrono::Utc::now())) } }
            }
            section aria-labelledby="forecasts" {
                h2 #forecasts { (lang.t(A::ForecastsTitle)) }
                @if forecasts.is_empty() {
                    p.empty { (lang.t(A::NoForecasts)) }
                } @else {
                    (forecast_table(lang, &forecasts))
                }
            }
            section aria-labelledby="roi-events" {
                h2 #roi-events { (lang.t(A::RoiEvents)) }
                (roi_table(lang, "roi-events-table", A::Event, &roi.events))
            }
            section aria-labelledby="roi-types" {
                h2 #roi-types { (lang.t(A::RoiTypes)) }
                (roi_table(lang, "roi-types-table", A::EventType, &roi.by_type))
            }
        };
        Ok(layout::nav_page(&visit, Nav::Forecasts, main))
    })
    .await
}

/// An estimate and its interval: `expected (low–high)`.
fn estimate(lang: Lang, e: &Estimate, show: impl Fn(Lang, f64) -> String) -> Markup {
    html! {
        (show(lang, e.expected))
        span.interval { " (" (show(lang, e.low)) "–" (show(lang, e.high)) ")" }
    }
}

fn count(lang: Lang, x: f64) -> String {
    lang.int(x.round() as i64)
}

fn share(lang: Lang, x: f64) -> String {
    lang.percent(x)
}

fn forecast_table(lang: Lang, forecasts: &[Forecast]) -> Markup {
    html! {
        div.scroll tabindex="0" role="region" aria-labelledby="forecasts" {
            table #forecast-table {
                (layout::columns(lang, &[A::Event, A::EventType, A::Phase, A::Registered,
                    A::FinalAttendance, A::ShowUpRate, A::Peak, A::BacktestError, A::Coverage]))
                tbody {
                    @for f in forecasts {
                        tr data-event=(f.event_id) {
                            th scope="row" { a href=(paths::item(paths::EVENTS, &f.event_id)) { (f.event_id) } }
                            td { code { (f.event_type) } }
                            td { (f.phase) }
                            td.num { (lang.int(f.registered)) }
                            td.num.final-attendance { (estimate(lang, &f.final_attendance, count)) }
                            td.num { (estimate(lang, &f.show_up_rate, share)) }
                            td.num { @match &f.peak_attendees { Some(p) => (estimate(lang, p, count)), None => "–" } }
                            td.num.mape {
                                @match f.backtest.mape {
                                    Some(m) => (format!("{m:.1}%")),
                                    None => "–",
                                }
                                span.note { " (" (f.backtest.events) " " (lang.t(A::Events)) ")" }
                            }
                            td.num { @match f.backtest.interval_coverage { Some(c) => (lang.percent(c)), None => "–" } }
                        }
                    }
                }
            }
        }
    }
}

fn money(lang: Lang, x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| lang.int(x.round() as i64))
}

fn roi_table(lang: Lang, id: &str, subject: A, rows: &[Roi]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (lang.t(A::NoRoi)) }
        } @else {
            div.scroll tabindex="0" role="region" aria-label=(lang.t(subject)) {
                table id=(id) {
                    (layout::columns(lang, &[subject, A::Currency, A::EventsCount, A::Attendees,
                        A::Revenue, A::Cost, A::Profit, A::Roi, A::Final]))
                    tbody {
                        @for r in rows {
                            tr data-subject=(r.subject) {
                                th scope="row" { (r.subject) }
                                td { (r.currency.as_deref().unwrap_or("–")) }
                                td.num { (lang.int(r.events)) }
                                td.num { (lang.int(r.attendees)) }
                                td.num { (money(lang, r.revenue)) }
                                td.num { (money(lang, r.cost)) }
                                td.num { (money(lang, r.profit)) }
                                td.num.roi { @match r.roi { Some(x) => (lang.percent(x)), None => "–" } }
                                td { (lang.t(if r.complete { A::Yes } else { A::NotYet })) }
                            }
                        }
                    }
                }
            }
        }
    }
}
