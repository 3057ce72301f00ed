//! The event page's markup: each section a function, the live ones (headline, gate table,
//! alerts) also drawn alone for the stream, marked to replace their namesakes.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use maud::{Markup, html};
use muster_analytics::insights::forecast::{Estimate, Forecast};
use muster_analytics::insights::recommend::Kind;
use muster_schemas::Health;

use super::chart::{self, ChartData, Day, GateRow, GateState};
use super::{Core, Page};
use crate::read::events::Status;
use crate::read::health::HealthChange;
use crate::web::i18n::{self, Lang, Msg, zone_label};
use crate::web::layout::columns;
use crate::web::overview::live_state;

/// `hx-swap-oob="true"` on an element sent by a live update.
fn oob(live: bool) -> Option<&'static str> {
    live.then_some("true")
}

/// What the live stream sends for `core`.
pub fn live_fragments(lang: Lang, now: DateTime<Utc>, core: &Core) -> String {
    let mut html = headline(lang, now, core, true).into_string();
    html.push_str(
        &gate_table(
            lang,
            &chart::gate_rows(&core.gate_points, &core.gates_now, &core.alerts),
            true,
        )
        .into_string(),
    );
    html.push_str(&alerts(lang, now, core, true).into_string());
    html
}

/// The page's `main`.
pub fn main(lang: Lang, now: DateTime<Utc>, page: &Page, live: &str) -> Markup {
    let core = &page.core;
    let e = &core.event;
    let zone = e.zone();
    let data = chart_data(lang, page);
    let gates = &data.gates;
    html! {
        h1 { (e.name) }
        p.lede {
            span.type { (e.event_type) }
            @if let Some(c) = e.capacity {
                span { (lang.t(Msg::Capacity)) " " (lang.int(c)) }
            }
        }
        p #zone .zone-note {
            (lang.t(Msg::TimesInZone)) ": " strong { (zone_label(zone)) }
            " · " (lang.t(Msg::Day)) ": " (lang.date(core.day.from, zone))
        }
        nav.toc aria-label=(lang.t(Msg::OnThisPage)) {
            ul {
                li { a href="#attendance" { (lang.t(Msg::Attendance)) } }
                li { a href="#gates" { (lang.t(Msg::Gates)) } }
                li { a href="#alerts" { (lang.t(Msg::AlertTimeline)) } }
                @if page.health.is_some() {
                    li { a href="#health" { (lang.t(Msg::ServiceHealth)) } }
                }
                li { a href="#insights" { (lang.t(Msg::Insights)) } }
            }
        }
        div #event-live hx-ext="sse" sse-connect=(live) sse-close="bye" {
            div sse-swap="update" hx-swap="none" hidden {}
            (live_state(lang))
            (headline(lang, now, core, false))
        }
        (attendance(lang, page))
        section #gates aria-labelledby="gates-title" {
            h2 #gates-title { (lang.t(Msg::Gates)) }
            (gate_table(lang, &chart::gate_rows(&core.gate_points, &core.gates_now, &core.alerts), false))
            p.note { (lang.t(Msg::UsualNote)) }
            @if core.gates_truncated {
                p.note role="note" { (lang.t(Msg::GatesTruncated)) }
            }
            h3 { (lang.t(Msg::GateTraffic)) }
            @if gates.t.is_empty() {
                p.empty { (lang.t(Msg::NoSeries)) }
            } @else {
                fieldset #gate-pick .gate-pick hidden {
                    legend { (lang.t(Msg::GatesShown)) }
                    @for (i, g) in gates.gates.iter().enumerate() {
                        label {
                            input type="checkbox" checked data-gate=(i);
                            span class=(format!("swatch swatch-{}", i % 8)) aria-hidden="true" {}
                            (g.id)
                        }
                    }
                }
                div #chart-gates .chart role="img" aria-label=(lang.t(Msg::GateChart)) {}
                (gate_numbers(lang, zone, core.day, gates))
            }
        }
        (alerts(lang, now, core, false))
        @if let Some(changes) = &page.health {
            (health(lang, now, core.day, zone, changes))
        }
        (insights(lang, now, zone, page))
        script #event-data type="application/json" { (chart::island(&data)) }
    }
}

fn chart_data(lang: Lang, page: &Page) -> ChartData {
    let e = &page.core.event;
    let zone = e.zone();
    let labels: BTreeMap<&'static str, String> = [
        (
            "time",
            format!("{} ({})", lang.t(Msg::Time), zone_label(zone)),
        ),
        ("inside", lang.t(Msg::Inside).to_owned()),
        ("capacity", lang.t(Msg::Capacity).to_owned()),
        ("forecast", lang.t(Msg::ForecastFinal).to_owned()),
        ("forecastLow", lang.t(Msg::ForecastLow).to_owned()),
        ("forecastHigh", lang.t(Msg::ForecastHigh).to_owned()),
        ("entries", lang.t(Msg::Entries).to_owned()),
        ("exits", lang.t(Msg::Exits).to_owned()),
    ]
    .into_iter()
    .collect();
    ChartData {
        offset: zone.local_minus_utc(),
        from: page.core.day.from.timestamp(),
        to: page.core.day.to.timestamp(),
        attendance: chart::attendance(
            &page.points,
            e.capacity,
            page.forecast.as_ref().map(|f| f.final_attendance),
        ),
        gates: chart::gate_data(&page.core.gate_points),
        labels,
    }
}

/// The headline numbers (replaced whole by live updates).
pub fn headline(lang: Lang, now: DateTime<Utc>, core: &Core, live: bool) -> Markup {
    let e = &core.event;
    let zone = e.zone();
    let stale = e.status == Status::Stale;
    let active = core.alerts.iter().filter(|a| a.is_active()).count();
    let rt = e.realtime.as_ref();
    let card = |id: &str, label: Msg, value: String, sub: Option<String>| {
        html! {
            div.card id=(id) {
                p.label { (lang.t(label)) }
                p.value { (value) }
                @if let Some(s) = sub { p.sub { (s) } }
            }
        }
    };
    let none = || "–".to_owned();
    html! {
        section #event-headline .headline aria-label=(lang.t(Msg::Event)) hx-swap-oob=[oob(live)] {
            p.status-line {
                span class=(format!("status status-{}", e.status.as_str())) {
                    @if stale { span aria-hidden="true" { "⚠ " } }
                    (i18n::status(lang, e.status))
                }
                @if let Some(rt) = rt {
                    " " span.sub.inline {
                        (lang.t(Msg::Updated)) " "
                        time datetime=(rt.observed_at.to_rfc3339()) { (lang.time(rt.observed_at, zone, now)) }
                        " " (zone_label(zone)) " · " (lang.ago(rt.observed_at, now))
                    }
                }
            }
            div.cards.event-cards {
                (card("ev-inside", Msg::Inside, rt.map_or_else(none, |r| lang.int(r.current_attendees)),
                    e.occupancy().zip(e.capacity).map(|(share, cap)| format!("{} {} {}", lang.percent(share), lang.t(Msg::OfCapacity), lang.int(cap)))))
                (card("ev-registered", Msg::Registered, rt.map_or_else(none, |r| lang.int(r.total_registered)), None))
                (card("ev-rate", Msg::AttendanceRate, rt.map_or_else(none, |r| lang.percent(r.attendance_rate)), None))
                (card("ev-alerts", Msg::ActiveAlerts, lang.int(active as i64), None))
            }
        }
    }
}

fn interval(lang: Lang, e: &Estimate) -> String {
    format!(
        "{} ({} {}–{})",
        lang.int(e.expected.round() as i64),
        lang.t(Msg::Interval),
        lang.int(e.low.round() as i64),
        lang.int(e.high.round() as i64)
    )
}

fn attendance(lang: Lang, page: &Page) -> Markup {
    let core = &page.core;
    let zone = core.event.zone();
    html! {
        section #attendance aria-labelledby="attendance-title" {
            h2 #attendance-title { (lang.t(Msg::Attendance)) }
            p.forecast {
                @match &page.forecast {
                    Some(f) => { (lang.t(Msg::ForecastFinal)) ": " strong { (interval(lang, &f.final_attendance)) } }
                    None => { (lang.t(Msg::NoForecast)) }
                }
            }
            @if page.points.is_empty() {
                p.empty { (lang.t(Msg::NoSeries)) }
            } @else {
                div #chart-attendance .chart role="img" aria-label=(lang.t(Msg::AttendanceChart)) {}
                details.numbers #attendance-numbers {
                    summary { (lang.t(Msg::AttendanceNumbers)) }
                    div.scroll {
                        table {
                            caption.sr-only { (lang.t(Msg::AttendanceNumbers)) }
                            thead { tr {
                                th scope="col" { (lang.t(Msg::Time)) " (" (zone_label(zone)) ")" }
                                th scope="col" { (lang.t(Msg::Inside)) }
                                th scope="col" { (lang.t(Msg::Highest)) }
                                th scope="col" { (lang.t(Msg::Lowest)) }
                                th scope="col" { (lang.t(Msg::AttendanceRate)) }
                            } }
                            tbody {
                                @for p in &page.points {
                                    tr {
                                        th scope="row" { time datetime=(p.bucket.to_rfc3339()) { (lang.time(p.bucket, zone, core.day.from)) } }
                                        td.num { (lang.int(p.attendees_last)) }
                                        td.num { (lang.int(p.attendees_max)) }
                                        td.num { (lang.int(p.attendees_min)) }
                                        td.num { (lang.percent(p.attendance_rate_avg)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn gate_numbers(lang: Lang, zone: FixedOffset, day: Day, gates: &chart::GateData) -> Markup {
    let cell =
        |v: Option<i64>| html! { td.num { @match v { Some(v) => (lang.int(v)), None => "–" } } };
    html! {
        details.numbers #gate-numbers {
            summary { (lang.t(Msg::GateNumbers)) }
            div.scroll {
                table {
                    caption.sr-only { (lang.t(Msg::GateNumbers)) }
                    thead { tr {
                        th scope="col" { (lang.t(Msg::Time)) " (" (zone_label(zone)) ")" }
                        @for g in &gates.gates {
                            th scope="col" { (g.id) " · " (lang.t(Msg::Entries)) }
                            th scope="col" { (g.id) " · " (lang.t(Msg::Exits)) }
                        }
                    } }
                    tbody {
                        @for (i, t) in gates.t.iter().enumerate() {
                            @let at = DateTime::from_timestamp(*t, 0).unwrap_or(day.from);
                            tr {
                                th scope="row" { time datetime=(at.to_rfc3339()) { (lang.time(at, zone, day.from)) } }
                                @for g in &gates.gates {
                                    (cell(g.entries[i]))
                                    (cell(g.exits[i]))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn gate_state(lang: Lang, s: &GateState) -> Markup {
    let (class, text) = match s {
        GateState::Down => ("down", lang.t(Msg::GateDown).to_owned()),
        GateState::Reported(s) if s == "open" => ("healthy", lang.t(Msg::GateOpen).to_owned()),
        GateState::Reported(s) => ("unknown", s.clone()),
        GateState::Unknown => ("unknown", lang.t(Msg::GateUnknown).to_owned()),
    };
    html! { span class=(format!("health health-{class}")) { (text) } }
}

/// The gate table (replaced whole by live updates).
pub fn gate_table(lang: Lang, rows: &[GateRow], live: bool) -> Markup {
    let per_minute = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
    html! {
        div #gate-table .scroll hx-swap-oob=[oob(live)] {
            table.gates {
                caption.sr-only { (lang.t(Msg::Gates)) }
                (columns(lang, &[Msg::Gate, Msg::State, Msg::Entries, Msg::Exits, Msg::BusiestMinute,
                    Msg::ThroughputNow, Msg::ThroughputUsual, Msg::AgainstUsual]))
                tbody {
                    @for g in rows {
                        tr {
                            th scope="row" { (g.gate_id) }
                            td { (gate_state(lang, &g.state)) }
                            td.num { (lang.int(g.entries)) }
                            td.num { (lang.int(g.exits)) }
                            td.num { (lang.int(g.peak)) }
                            td.num { (per_minute(g.now)) }
                            td.num { (per_minute(g.usual)) }
                            td.num {
                                (g.against_usual().map_or("–".to_owned(), |r| lang.percent(r)))
                                @if g.slow {
                                    " " span.severity.severity-warning { (lang.t(Msg::BelowUsual)) }
                                }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() {
                p.empty { (lang.t(Msg::NoGates)) }
            }
        }
    }
}

/// The alerts of the day as a timeline, with their table (replaced whole by live updates).
pub fn alerts(lang: Lang, now: DateTime<Utc>, core: &Core, live: bool) -> Markup {
    let zone = core.event.zone();
    let day = core.day;
    let at = |t: DateTime<Utc>| html! { time datetime=(t.to_rfc3339()) { (lang.time(t, zone, day.from)) } };
    let kind = |a: &crate::read::alerts::Alert| {
        let k = i18n::alert_kind(lang, a.kind);
        match &a.subject {
            Some(s) => format!("{k} · {s}"),
            None => k.to_owned(),
        }
    };
    html! {
        section #alerts aria-labelledby="alerts-title" hx-swap-oob=[oob(live)] {
            h2 #alerts-title { (lang.t(Msg::AlertTimeline)) }
            @if core.alerts.is_empty() {
                p.empty { (lang.t(Msg::NoAlertsToday)) }
            } @else {
                ol.timeline {
                    @for a in &core.alerts {
                        @let (x, w, lasted) = chart::span(&day, a, now);
                        li {
                            p.tl-what {
                                span class=(format!("severity severity-{}", a.severity.as_str())) { (i18n::severity(lang, a.severity)) }
                                " " strong { (kind(a)) } " " span.message { (a.message) }
                            }
                            svg.tl-bar viewBox="0 0 1000 10" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
                                rect.track width="1000" height="10" {}
                                rect class=(format!("tl-{}", a.severity.as_str()))
                                    x=(format!("{:.1}", x * 1000.0)) width=(format!("{:.1}", (w * 1000.0).max(4.0))) height="10" {}
                            }
                            p.sub {
                                (at(a.raised_at)) " → "
                                @match a.resolved_at {
                                    Some(r) => (at(r)),
                                    None => span.state.state-active { (lang.t(Msg::StillActive)) },
                                }
                                " (" (lang.duration(lasted)) ")"
                            }
                        }
                    }
                }
                details.numbers #alert-numbers {
                    summary { (lang.t(Msg::AlertNumbers)) }
                    div.scroll {
                        table {
                            caption.sr-only { (lang.t(Msg::AlertNumbers)) }
                            (columns(lang, &[Msg::Raised, Msg::Resolved, Msg::Duration, Msg::Severity, Msg::Kind, Msg::Message]))
                            tbody {
                                @for a in &core.alerts {
                                    tr {
                                        td { (at(a.raised_at)) }
                                        td { @match a.resolved_at { Some(r) => (at(r)), None => (lang.t(Msg::StillActive)) } }
                                        td.num { (lang.duration(chart::span(&day, a, now).2)) }
                                        td { (i18n::severity(lang, a.severity)) }
                                        td { (kind(a)) }
                                        td { (a.message) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn health_class(h: Health) -> (&'static str, Msg) {
    match h {
        Health::Healthy => ("healthy", Msg::HealthHealthy),
        Health::Degraded => ("degraded", Msg::HealthDegraded),
        Health::Down => ("down", Msg::HealthDown),
    }
}

/// The service's health through the day: a strip of its states, and its changes as a table.
fn health(
    lang: Lang,
    now: DateTime<Utc>,
    day: Day,
    zone: FixedOffset,
    changes: &[HealthChange],
) -> Markup {
    let until = now.min(day.to);
    // Each change holds until the next one (the last until now).
    let spans: Vec<(&HealthChange, DateTime<Utc>)> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c, changes.get(i + 1).map_or(until, |n| n.at)))
        .collect();
    let badge = |h: Health| {
        let (class, msg) = health_class(h);
        html! { span class=(format!("health health-{class}")) { (lang.t(msg)) } }
    };
    html! {
        section #health aria-labelledby="health-title" {
            h2 #health-title { (lang.t(Msg::ServiceHealth)) }
            @if changes.is_empty() {
                p.empty { (lang.t(Msg::NoHealth)) }
            } @else {
                svg.strip viewBox="0 0 1000 12" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
                    rect.track width="1000" height="12" {}
                    @for (c, end) in &spans {
                        @let x0 = day.share(c.at.max(day.from)) * 1000.0;
                        @let x1 = day.share(*end) * 1000.0;
                        rect class=(format!("hs-{}", health_class(c.current).0))
                            x=(format!("{x0:.1}")) width=(format!("{:.1}", (x1 - x0).max(2.0))) height="12" {}
                    }
                }
                div.scroll {
                    table #health-table {
                        caption.sr-only { (lang.t(Msg::HealthNumbers)) }
                        (columns(lang, &[Msg::Since, Msg::Health, Msg::Before, Msg::Duration, Msg::Reason, Msg::Latency, Msg::Failures]))
                        tbody {
                            @for (c, end) in &spans {
                                tr {
                                    td { time datetime=(c.at.to_rfc3339()) { (lang.time(c.at, zone, day.from)) } }
                                    td { (badge(c.current)) }
                                    td { @match c.previous { Some(p) => (badge(p)), None => "–" } }
                                    td.num { (lang.duration(*end - c.at)) }
                                    td { (c.reason) }
                                    td.num { @match c.latency_ms { Some(ms) => { (lang.int(ms)) " ms" }, None => "–" } }
                                    td.num { (lang.int(c.consecutive_failures.into())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rec_kind(k: Kind) -> (&'static str, Msg) {
    match k {
        Kind::OpenGates => ("open-gates", Msg::RecOpenGates),
        Kind::Capacity => ("capacity", Msg::RecCapacity),
        Kind::UnderAttendance => ("under-attendance", Msg::RecUnderAttendance),
        Kind::PeakStaffing => ("peak-staffing", Msg::RecPeakStaffing),
        Kind::GateImbalance => ("gate-imbalance", Msg::RecGateImbalance),
        Kind::CriticalAlerts => ("critical-alerts", Msg::RecCriticalAlerts),
        Kind::StaleData => ("stale-data", Msg::RecStaleData),
    }
}

/// A piece of evidence as text: whole numbers grouped, fractions to two places, text as is.
pub fn evidence_value(lang: Lang, v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => lang.int(i),
            None => format!("{:.2}", n.as_f64().unwrap_or_default()),
        },
        Value::Array(items) => items
            .iter()
            .map(|i| evidence_value(lang, i))
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    }
}

fn forecast(lang: Lang, now: DateTime<Utc>, zone: FixedOffset, f: &Forecast) -> Markup {
    let pct = |e: &Estimate| {
        format!(
            "{} ({} {}–{})",
            lang.percent(e.expected),
            lang.t(Msg::Interval),
            lang.percent(e.low),
            lang.percent(e.high)
        )
    };
    html! {
        dl.facts #forecast {
            dt { (lang.t(Msg::ForecastFinal)) } dd { (interval(lang, &f.final_attendance)) }
            dt { (lang.t(Msg::ShowUpRate)) } dd { (pct(&f.show_up_rate)) }
            @if let Some(p) = &f.peak_attendees {
                dt { (lang.t(Msg::ExpectedPeak)) } dd { (interval(lang, p)) }
            }
            @if let Some(at) = f.peak_at {
                dt { (lang.t(Msg::PeakAt)) }
                dd { time datetime=(at.to_rfc3339()) { (lang.time(at, zone, now)) } " " (zone_label(zone)) }
            }
            @if f.gates_needed.is_some() || f.gates_open.is_some() {
                dt { (lang.t(Msg::GatesNeeded)) }
                dd {
                    (f.gates_needed.map_or("–".to_owned(), |n| lang.int(n))) " / "
                    (f.gates_open.map_or("–".to_owned(), |n| lang.int(n)))
                }
            }
            dt { (lang.t(Msg::SimilarEvents)) } dd { (lang.int(f.similar_event_count as i64)) }
            @if let Some(m) = f.backtest.mape {
                dt { (lang.t(Msg::BacktestError)) } dd { (format!("{m:.1}%")) }
            }
            @if !f.risks.is_empty() {
                dt { (lang.t(Msg::Risks)) }
                dd { ul { @for r in &f.risks { li { (r.message) } } } }
            }
        }
    }
}

fn insights(lang: Lang, now: DateTime<Utc>, zone: FixedOffset, page: &Page) -> Markup {
    html! {
        section #insights aria-labelledby="insights-title" {
            h2 #insights-title { (lang.t(Msg::Insights)) }
            @if let Some(f) = &page.forecast {
                h3 { (lang.t(Msg::ForecastFinal)) }
                (forecast(lang, now, zone, f))
            }
            h3 { (lang.t(Msg::Recommendations)) }
            @if page.recommendations.is_empty() {
                p.empty { (lang.t(Msg::NoRecommendations)) }
            } @else {
                ul.recs {
                    @for r in &page.recommendations {
                        @let (class, label) = rec_kind(r.kind);
                        li class=(format!("rec rec-{class}")) {
                            p { span.rec-kind { (lang.t(label)) } " " (r.message) }
                            @if !r.evidence.is_empty() {
                                dl.evidence aria-label=(lang.t(Msg::Evidence)) {
                                    @for (k, v) in &r.evidence {
                                        dt { code { (k) } }
                                        dd { (evidence_value(lang, v)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(at) = page.computed_at {
                p.note {
                    (lang.t(Msg::ComputedAt)) ": "
                    time datetime=(at.to_rfc3339()) { (lang.time(at, zone, now)) } " " (zone_label(zone))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_reads_as_text() {
        let l = Lang::En;
        assert_eq!(evidence_value(l, &json!(12345)), "12,345");
        assert_eq!(evidence_value(l, &json!(0.8765)), "0.88");
        assert_eq!(evidence_value(l, &json!("G1")), "G1");
        assert_eq!(evidence_value(l, &json!(["a", 2])), "a, 2");
        assert_eq!(evidence_value(l, &json!(null)), "–");
        assert_eq!(evidence_value(l, &json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn every_recommendation_kind_has_a_label() {
        for k in [
            Kind::OpenGates,
            Kind::Capacity,
            Kind::UnderAttendance,
            Kind::PeakStaffing,
            Kind::GateImbalance,
            Kind::CriticalAlerts,
            Kind::StaleData,
        ] {
            let (class, _) = rec_kind(k);
            assert_eq!(serde_json::to_value(k).unwrap(), class);
        }
    }
}
