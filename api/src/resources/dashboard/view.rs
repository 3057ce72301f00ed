//! What the dashboard routes answer: the response types and their query strings.

use chrono::{DateTime, Utc};
use muster_analytics::insights::recommend::Recommendation;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::range::Resolution;
use crate::read::alerts::Alert;
use crate::read::events::{Event, Status};
use crate::read::series::{GateSummary, HourPattern, Peak, Trend, TrendPoint};

/// An event's latest numbers, as the realtime projection holds them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub total_registered: i64,
    pub current_attendees: i64,
    /// current / registered, 0 when nobody registered.
    pub attendance_rate: f64,
    pub capacity: Option<i64>,
    /// current / capacity when the capacity is known.
    pub occupancy: Option<f64>,
    pub observed_at: Option<DateTime<Utc>>,
}

impl Metrics {
    /// The event's numbers, absent before its first snapshot.
    pub fn of(e: &Event) -> Option<Self> {
        let r = e.realtime.as_ref()?;
        Some(Self {
            total_registered: r.total_registered,
            current_attendees: r.current_attendees,
            attendance_rate: r.attendance_rate,
            capacity: e.capacity,
            occupancy: e.occupancy(),
            observed_at: Some(r.observed_at),
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardEvent {
    pub event_id: String,
    pub event_name: String,
    pub event_type: String,
    pub status: Status,
    /// Absent until the first snapshot is projected.
    pub metrics: Option<Metrics>,
    /// Absent when the range holds no series point.
    pub trend: Option<Trend>,
    /// The event's active alerts.
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total_events: i64,
    pub total_registered: i64,
    pub total_attendees: i64,
    /// Mean of the events' attendance rates (events without numbers left out; 0 when none).
    pub average_attendance_rate: f64,
    pub active_alerts: i64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Performance {
    pub peak_attendees: Option<Peak>,
    pub entries: i64,
    pub exits: i64,
    pub busiest_gate: Option<GateSummary>,
    /// Mean of current / capacity over events with a capacity.
    pub average_occupancy: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Insights {
    pub attendance_patterns: Vec<HourPattern>,
    pub performance_metrics: Performance,
    /// The live rules' over the current numbers, then those of the scheduled insights
    /// (forecast-based).
    pub recommendations: Vec<Recommendation>,
    /// Forecasts of the upcoming and ongoing events shown, from similar past events.
    pub forecasts: Vec<muster_analytics::insights::forecast::Forecast>,
    /// Revenue against cost of the events shown that have a ticket price or a cost.
    pub roi: Vec<muster_analytics::insights::roi::Roi>,
    /// Anonymized behaviour (k-anonymous bins); per-event insights only.
    pub behaviour: Vec<muster_analytics::insights::behaviour::Bin>,
    /// When the scheduled insights were last recomputed (none before the first run).
    pub computed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub event_id: String,
    pub event_name: String,
    pub current_attendees: i64,
    pub attendance_rate: f64,
    pub peak_attendees: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Charts {
    pub attendance_trend: Vec<TrendPoint>,
    pub event_comparison: Vec<Comparison>,
    /// Alerts raised in the range, and those still active, oldest first.
    pub alerts_timeline: Vec<Alert>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub time_range: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The width of chart points.
    pub resolution: Resolution,
    pub summary: Summary,
    pub events: Vec<DashboardEvent>,
    pub insights: Insights,
    pub charts: Charts,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DashboardQuery {
    /// How far back: `90m`, `24h` (default), `7d`, up to `400d`.
    #[param(pattern = r"^([1-9][0-9]{0,4}m|[1-9][0-9]{0,2}h|([1-9][0-9]?|[1-3][0-9]{2}|400)d)$")]
    pub time_range: Option<String>,
    /// Only events of this type.
    #[param(pattern = r"^[^\x00]*$")]
    pub event_type: Option<String>,
    /// Only events with this status.
    pub status: Option<Status>,
    /// Only events this text matches, as `q` of `GET /api/public/events` (at most 200
    /// characters).
    #[param(max_length = 200, pattern = r"^[^\x00]*$")]
    pub q: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InsightsQuery {
    /// How far back: `90m`, `24h` (default), `7d`, up to `400d`.
    #[param(pattern = r"^([1-9][0-9]{0,4}m|[1-9][0-9]{0,2}h|([1-9][0-9]?|[1-3][0-9]{2}|400)d)$")]
    pub time_range: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventInsights {
    pub event_id: String,
    pub event_name: String,
    pub status: Status,
    pub time_range: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub metrics: Option<Metrics>,
    pub trend: Option<Trend>,
    pub insights: Insights,
    /// Every gate's traffic, busiest first.
    pub gates: Vec<GateSummary>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeSummary {
    pub event_type: String,
    pub events: i64,
    pub total_registered: i64,
    pub total_attendees: i64,
    pub average_attendance_rate: f64,
}

/// `GET /api/partner/analytics/summary`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSummary {
    #[serde(flatten)]
    pub summary: Summary,
    pub live_events: i64,
    /// Alerts raised in the last 24 hours.
    pub alerts_last_24h: i64,
    pub by_type: Vec<TypeSummary>,
}
