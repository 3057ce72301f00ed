//! `GET /events/{eventId}`: one event through its local day, in its own time zone (labelled).
//! Its headline numbers; attendance by minute against capacity with the forecast's final
//! attendance and interval; entries and exits per gate per minute (gates selectable) and the
//! gate table; the alerts as a timeline; the upstream service's health history (admin); the
//! insights and recommendations with their evidence. Every chart has its numbers as a table.
//!
//! The charts are drawn by `event.js` with uPlot from a JSON data island; everything else is
//! HTML. The headline, the gate table and the alerts subscribe to `/live/event` and are redrawn
//! from there when the change feed reports the event.

mod chart;
mod view;

use chrono::{DateTime, Utc};
use muster_analytics::insights::forecast::Forecast;
use muster_analytics::insights::recommend::Recommendation;
use muster_schemas::GateActivity;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use self::chart::Day;
use super::Site;
use super::assets::Asset;
use super::layout::{self, document, percent_decode, url_encode};
use super::session::Visit;
use crate::auth::Viewer;
use crate::problem::Problem;
use crate::range::Resolution;
use crate::read::Reader;
use crate::read::alerts::{self, Alert};
use crate::read::events::{self, Event};
use crate::read::health::{self, HealthChange};
use crate::read::series::{self, GatePoint, Range, SeriesPoint, Window};
use crate::read::{Client, capped};
use crate::resources::dashboard::build::{Shown, insights};
use crate::web::paths;

pub use view::live_fragments;

/// The most gate points a page reads (a day of minutes for 40 gates).
const GATE_POINTS: usize = 40 * 1440;
/// The most health changes a page lists.
const HEALTH_CHANGES: i64 = 500;

/// The live stream's query: which event.
#[derive(Debug, Clone, Deserialize)]
pub struct Query {
    pub event: String,
}

/// What the live part of the page shows: the event, its alerts of the day and its gates.
pub struct Core {
    pub event: Event,
    pub day: Day,
    /// Active, or raised since the day began; oldest first.
    pub alerts: Vec<Alert>,
    pub gate_points: Vec<GatePoint>,
    /// More gate points fell in the day than the page reads.
    pub gates_truncated: bool,
    pub gates_now: Vec<GateActivity>,
}

/// The event `event_id` as `viewer` may see it: 403 when not granted, 404 when unknown.
pub async fn core(
    db: &Client,
    viewer: &Viewer,
    event_id: &str,
    reader: &Reader,
    now: DateTime<Utc>,
) -> Result<Core, Problem> {
    viewer.check(event_id)?;
    let ids = [event_id.to_owned()];
    let filter = events::Filter {
        ids: Some(&ids),
        event_type: None,
        search: None,
    };
    let Some(event) = reader.events_on(db, filter).await?.pop() else {
        return Err(Problem::not_found(
            "No such event",
            format!("no event {event_id}"),
        ));
    };
    let day = Day::of(event.zone(), event.ends_at, now);
    let window = Window {
        event_id,
        resolution: Resolution::Minute,
        from: day.from,
        to: day.to,
        limit: GATE_POINTS as i64 + 1,
    };
    let (gate_points, gates_truncated) =
        capped(series::gate_points(db, window).await?, GATE_POINTS);
    Ok(Core {
        alerts: alerts::active_or_since(db, &ids, day.from).await?,
        gates_now: events::gates_now(db, event_id).await?,
        gate_points,
        gates_truncated,
        event,
        day,
    })
}

/// The whole page: the live part, and what changes only with a new page.
pub struct Page {
    pub core: Core,
    pub points: Vec<SeriesPoint>,
    pub forecast: Option<Forecast>,
    pub recommendations: Vec<Recommendation>,
    pub computed_at: Option<DateTime<Utc>>,
    /// The service's health changes; `None` for a partner, who never sees services.
    pub health: Option<Vec<HealthChange>>,
}

async fn load(site: &Site, db: &Client, viewer: &Viewer, event_id: &str) -> Result<Page, Problem> {
    let core = core(db, viewer, event_id, &site.reader, Utc::now()).await?;
    let day = core.day;
    let points = series::event_points(
        db,
        Window {
            event_id,
            resolution: Resolution::Minute,
            from: day.from,
            to: day.to,
            limit: 24 * 60,
        },
    )
    .await?;
    // The insights the JSON API's event insights show, over the same day.
    let ids = [event_id.to_owned()];
    let range = Range {
        ids: &ids,
        since: day.from,
        resolution: Resolution::for_span(day.to - day.from),
    };
    let shown = Shown {
        events: vec![core.event.clone()],
        alerts: core.alerts.clone(),
        gates: series::gates(db, range).await?,
        trends: Default::default(),
        range,
    };
    let insights = insights(db, &shown, &site.state.insights.live, false, viewer).await?;
    let health = match viewer {
        Viewer::Admin => {
            Some(health::history(db, event_id, day.from, day.to, HEALTH_CHANGES).await?)
        }
        Viewer::Partner(_) => None,
    };
    Ok(Page {
        points,
        forecast: insights
            .forecasts
            .into_iter()
            .find(|f| f.event_id == event_id),
        recommendations: insights.recommendations,
        computed_at: insights.computed_at,
        health,
        core,
    })
}

/// `GET /events/{eventId}`.
pub async fn page(event_id: String, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open| {
        // Path segments arrive percent-encoded.
        let event_id = percent_decode(&event_id);
        let page = load(&site, &open.db, &open.session.viewer, &event_id).await?;
        let live = paths::live(
            paths::EVENT_STREAM,
            &format!("event={}&since={}", url_encode(&event_id), open.head),
        );
        let main = view::main(visit.lang, Utc::now(), &page, &live);
        let scripts = [Asset::UplotCss, Asset::Uplot, Asset::EventJs];
        let doc = document(&visit, &page.core.event.name, None, &scripts, main);
        Ok(layout::respond(&visit, StatusCode::OK, doc))
    })
    .await
}
