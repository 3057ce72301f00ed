//! `GET /patterns?eventType=…`: attendance rate by local weekday × hour for one event type, as
//! the heatmap of a server-rendered table: each cell's colour a bucket of its rate (a CSS
//! class), its text the rate, its `title` the rate, the sample size and the change against
//! the period before. Read as `GET /api/premium/analytics/patterns` reads it
//! ([`Patterns::read`]): cells of too few events are left out for everyone.

use maud::{Markup, html};
use muster_analytics::insights::patterns::Pattern;
use warp::reply::Response;

use super::analyst;
use super::texts::A;
use crate::resources::insights::{Patterns, PatternsQuery};
use crate::web::i18n::{Lang, Msg};
use crate::web::layout::{self, Nav};
use crate::web::session::Visit;
use crate::web::{Open, Site, paths};

/// The rows: local weekdays from Monday (the data's 0 is Sunday), with their names.
const DAYS: [(i32, A); 7] = [
    (1, A::Mon),
    (2, A::Tue),
    (3, A::Wed),
    (4, A::Thu),
    (5, A::Fri),
    (6, A::Sat),
    (0, A::Sun),
];

/// Colour buckets of a rate: `heat-0` below 20 % … `heat-4` from 80 %.
const BUCKETS: i64 = 5;

fn bucket(rate: f64) -> i64 {
    ((rate * BUCKETS as f64).floor() as i64).clamp(0, BUCKETS - 1)
}

/// `GET /patterns`.
pub async fn page(q: PatternsQuery, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        analyst(&open.session.viewer)?;
        let lang = visit.lang;
        let all = Patterns::read(&open.db, &site.state.insights, None).await?;
        let mut types: Vec<&str> = all.patterns.iter().map(|p| p.event_type.as_str()).collect();
        types.dedup();
        let chosen = q
            .event_type
            .as_deref()
            .filter(|t| types.contains(t))
            .or(types.first().copied());
        let cells: Vec<&Pattern> = all
            .patterns
            .iter()
            .filter(|p| Some(p.event_type.as_str()) == chosen)
            .collect();
        let main = html! {
            h1 { (lang.t(Msg::Patterns)) }
            p { (lang.t(A::PatternsIntro)) " " (lang.t(A::MinEvents)) " " (all.min_events) "." }
            @if let Some(at) = all.computed_at {
                p.note { (lang.t(A::ComputedAt)) " " time datetime=(at.to_rfc3339()) { (lang.ago(at, chrono::Utc::now())) } }
            }
            form.filters method="get" action=(paths::to(paths::PATTERNS)) {
                div.field {
                    label for="eventType" { (lang.t(A::EventType)) }
                    select #eventType name="eventType" {
                        @for t in &types { option value=(t) selected[chosen == Some(*t)] { (t) } }
                    }
                }
                button type="submit" { (lang.t(A::Show)) }
            }
            @match chosen {
                None => p.empty { (lang.t(A::NoPatterns)) },
                Some(t) => (heatmap(lang, t, &cells)),
            }
        };
        Ok(layout::nav_page(&visit, Nav::Patterns, main))
    })
    .await
}

fn heatmap(lang: Lang, event_type: &str, cells: &[&Pattern]) -> Markup {
    let at = |day: i32, hour: i32| {
        cells
            .iter()
            .find(|p| p.day_of_week == day && p.hour_of_day == hour)
    };
    html! {
        div.scroll tabindex="0" role="region" aria-labelledby="heatmap-caption" {
            table.heatmap #heatmap {
                caption #heatmap-caption { (lang.t(A::HeatmapCaption)) " " code { (event_type) } }
                thead { tr {
                    th scope="col" { (lang.t(A::Day)) }
                    @for h in 0..24 { th scope="col" { (format!("{h:02}")) } }
                } }
                tbody {
                    @for (day, name) in DAYS {
                        tr {
                            th scope="row" { (lang.t(name)) }
                            @for h in 0..24 {
                                @match at(day, h) {
                                    Some(p) => td class=(format!("heat-{}", bucket(p.average_attendance_rate)))
                                        title=(hover(lang, p)) { (lang.percent(p.average_attendance_rate)) },
                                    None => td.heat-none title=(lang.t(A::NoData)) { "·" },
                                }
                            }
                        }
                    }
                }
            }
        }
        ul.heat-legend aria-label=(lang.t(A::Legend)) {
            @for b in 0..BUCKETS {
                li { span class=(format!("swatch heat-{b}")) {} " " (b * 100 / BUCKETS) "–" ((b + 1) * 100 / BUCKETS) "%" }
            }
        }
    }
}

/// A cell's hover text: its rate, what it stands on, and its change against the period before.
fn hover(lang: Lang, p: &Pattern) -> String {
    let change = match p.change {
        Some(c) => format!(
            "{:+.1}{} {}",
            c * 100.0,
            lang.t(A::Points),
            lang.t(A::VsPrevious)
        ),
        None => lang.t(A::NoPrevious).to_owned(),
    };
    format!(
        "{}: {} · {} {} · {} {} · {}",
        lang.t(A::Rate),
        lang.percent(p.average_attendance_rate),
        lang.int(p.samples),
        lang.t(A::EventHours),
        lang.int(p.events),
        lang.t(A::Events),
        change
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_fall_in_five_buckets() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(0.19), 0);
        assert_eq!(bucket(0.2), 1);
        assert_eq!(bucket(0.79), 3);
        assert_eq!(bucket(0.8), 4);
        assert_eq!(bucket(1.3), 4);
        assert_eq!(bucket(-0.1), 0);
    }
}
