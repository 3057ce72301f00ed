//! The unified dashboard (`GET /api/dashboard`), per-event insights and the partner summary.
//! Every answer is a handful of indexed queries on the projections, bounded by the viewer's
//! events and the time range; nothing here reads Kafka or raw data.

pub(crate) mod build;
pub mod view;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use muster_analytics::insights::live::LiveRules;
use warp::{Filter, Reply};

use self::build::{Shown, insights, summary};
use self::view::*;
use crate::auth::{Partner, Viewer};
use crate::problem::Problem;
use crate::problem::answers::{BadRequest, Forbidden, NotFound};
use crate::range::{Resolution, span};
use crate::read::events::{self, Event, Status};
use crate::read::search::Search;
use crate::read::series::{self, Range};
use crate::read::{Client, Reader, alerts};
use crate::route::{Ctx, EventId, Route, any, route, with};

/// What the dashboard routes need beyond the connection.
#[derive(Clone)]
struct Settings {
    reader: Reader,
    rules: LiveRules,
}

/// The span a `timeRange` asks for, as the range it reads up to now.
fn window(time_range: Option<&str>) -> Result<(DateTime<Utc>, DateTime<Utc>, Resolution), Problem> {
    let span = span(time_range)?;
    let to = Utc::now();
    Ok((to - span, to, Resolution::for_span(span)))
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// `GET /api/dashboard`.
#[utoipa::path(get, path = "/api/dashboard", tag = "dashboard",
    params(DashboardQuery),
    responses((status = 200, body = Dashboard), BadRequest))]
async fn dashboard(
    query: DashboardQuery,
    viewer: Viewer,
    db: Client,
    settings: Settings,
) -> Result<impl Reply, Problem> {
    let (since, to, resolution) = window(query.time_range.as_deref())?;
    let search = Search::parse(query.q.as_deref())?;
    let filter = events::Filter {
        ids: viewer.event_ids(),
        event_type: query.event_type.as_deref(),
        search: search.as_ref(),
    };
    let mut events = settings.reader.events_on(&db, filter).await?;
    if let Some(status) = query.status {
        events.retain(|e| e.status == status);
    }
    let ids = ids(&events);
    let range = Range {
        ids: &ids,
        since,
        resolution,
    };
    let shown = Shown::load(&db, events, range).await?;
    let insights = insights(&db, &shown, &settings.rules, false, &viewer).await?;
    let attendance_trend = series::chart(&db, range).await?;
    let Shown {
        events,
        alerts,
        mut trends,
        ..
    } = shown;
    let event_comparison = events
        .iter()
        .map(|e| Comparison {
            event_id: e.event_id.clone(),
            event_name: e.name.clone(),
            current_attendees: e.realtime.as_ref().map_or(0, |r| r.current_attendees),
            attendance_rate: e.realtime.as_ref().map_or(0.0, |r| r.attendance_rate),
            peak_attendees: trends.get(&e.event_id).map(|t| t.peak_attendees),
        })
        .collect();
    let summary = summary(&events, &alerts);
    // Grouped once: a thousand events must not each scan every alert.
    let mut active: HashMap<&str, Vec<alerts::Alert>> = HashMap::new();
    for a in alerts.iter().filter(|a| a.is_active()) {
        active
            .entry(a.event_id.as_str())
            .or_default()
            .push(a.clone());
    }
    let events = events
        .into_iter()
        .map(|e| DashboardEvent {
            alerts: active.remove(e.event_id.as_str()).unwrap_or_default(),
            trend: trends.remove(&e.event_id),
            metrics: Metrics::of(&e),
            event_id: e.event_id,
            event_name: e.name,
            event_type: e.event_type,
            status: e.status,
        })
        .collect();
    Ok(warp::reply::json(&Dashboard {
        time_range: query.time_range.unwrap_or_else(|| "24h".into()),
        from: since,
        to,
        resolution,
        summary,
        events,
        insights,
        charts: Charts {
            attendance_trend,
            event_comparison,
            alerts_timeline: alerts,
        },
    }))
}

/// `GET /api/events/{eventId}/insights`.
#[utoipa::path(get, path = "/api/events/{eventId}/insights", tag = "dashboard",
    params(EventId, InsightsQuery),
    responses((status = 200, body = EventInsights), BadRequest, Forbidden, NotFound))]
async fn event_insights(
    event_id: String,
    query: InsightsQuery,
    viewer: Viewer,
    db: Client,
    settings: Settings,
) -> Result<impl Reply, Problem> {
    viewer.check(&event_id)?;
    let (since, to, resolution) = window(query.time_range.as_deref())?;
    let ids = [event_id.clone()];
    let filter = events::Filter {
        ids: Some(&ids),
        event_type: None,
        search: None,
    };
    let events = settings.reader.events_on(&db, filter).await?;
    if events.is_empty() {
        return Err(Problem::not_found(
            "No such resource",
            format!("no event {event_id} in the catalogue"),
        ));
    }
    let range = Range {
        ids: &ids,
        since,
        resolution,
    };
    let mut shown = Shown::load(&db, events, range).await?;
    let insights = insights(&db, &shown, &settings.rules, true, &viewer).await?;
    let event = &shown.events[0];
    Ok(warp::reply::json(&EventInsights {
        event_id: event.event_id.clone(),
        event_name: event.name.clone(),
        status: event.status,
        time_range: query.time_range.unwrap_or_else(|| "24h".into()),
        from: since,
        to,
        metrics: Metrics::of(event),
        trend: shown.trends.remove(&event_id),
        insights,
        gates: shown.gates,
    }))
}

/// `GET /api/partner/analytics/summary`: totals over the partner's events.
#[utoipa::path(get, path = "/api/partner/analytics/summary", tag = "partner",
    responses((status = 200, body = AnalyticsSummary)))]
async fn analytics_summary(
    partner: Partner,
    db: Client,
    settings: Settings,
) -> Result<impl Reply, Problem> {
    let filter = events::Filter {
        ids: Some(&partner.event_ids),
        event_type: None,
        search: None,
    };
    let events = settings.reader.events_on(&db, filter).await?;
    let since = Utc::now() - Duration::hours(24);
    let alerts = alerts::active_or_since(&db, &ids(&events), since).await?;
    let mut by_type: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_type.entry(&e.event_type).or_default().push(e);
    }
    let by_type = by_type
        .into_iter()
        .map(|(t, es)| {
            let s = summary(es, &[]);
            TypeSummary {
                event_type: t.to_owned(),
                events: s.total_events,
                total_registered: s.total_registered,
                total_attendees: s.total_attendees,
                average_attendance_rate: s.average_attendance_rate,
            }
        })
        .collect();
    Ok(warp::reply::json(&AnalyticsSummary {
        summary: summary(&events, &alerts),
        live_events: events.iter().filter(|e| e.status == Status::Live).count() as i64,
        alerts_last_24h: alerts.iter().filter(|a| a.raised_at >= since).count() as i64,
        by_type,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(dashboard, event_insights, analytics_summary),
    components(schemas(Status))
)]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let settings = || {
        with(Settings {
            reader: ctx.reader(),
            rules: ctx.state.insights.live.clone(),
        })
    };
    any([
        route!(analytics_summary, ctx.auth.partner(), ctx.db(), settings()),
        route!(
            dashboard,
            warp::query::<DashboardQuery>(),
            ctx.auth.viewer(),
            ctx.db(),
            settings()
        ),
        route!(
            event_insights(event_id),
            warp::query::<InsightsQuery>(),
            ctx.auth.viewer(),
            ctx.db(),
            settings()
        ),
    ])
}
