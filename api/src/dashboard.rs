//! The unified dashboard (`GET /api/dashboard`), per-event insights and the partner summary.
//! Every answer is a handful of indexed queries on the projections, bounded by the viewer's
//! events and the time range; nothing here reads Kafka or raw data.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::public_status;
use crate::partners::{Viewer, unavailable};
use crate::problem::Problem;
use crate::range::{Resolution, span};

type Client = deadpool_postgres::Object;
type Rejection = warp::Rejection;

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

/// An alert as the alerts projection holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub alert_id: String,
    pub event_id: String,
    pub kind: String,
    pub subject: Option<String>,
    pub severity: String,
    pub message: String,
    /// active or resolved.
    pub state: String,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// How attendance moved over the range: first against last bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trend {
    /// rising, falling or steady (within ±5 %).
    pub direction: String,
    pub from_attendees: i64,
    pub to_attendees: i64,
    pub change: i64,
    /// change / from; absent when the range starts at 0.
    pub change_pct: Option<f64>,
    pub peak_attendees: i64,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardEvent {
    pub event_id: String,
    pub event_name: String,
    pub event_type: String,
    /// scheduled, live, idle, degraded, ended, stale or pending (see the public list).
    pub status: String,
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

/// Average attendance rate by hour of day, in each event's own time zone.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HourPattern {
    pub hour_of_day: i32,
    pub average_attendance_rate: f64,
    pub samples: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Peak {
    pub event_id: String,
    pub attendees: i64,
    pub at: DateTime<Utc>,
}

/// A gate's traffic over the range.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateSummary {
    pub event_id: String,
    pub gate_id: String,
    pub entries: i64,
    pub exits: i64,
    /// The most entries in one bucket of `peakWindow`.
    pub peak_entries: i64,
    /// minute, or hour for ranges beyond the minute series' retention.
    pub peak_window: String,
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

/// Something to do, with the numbers that make the case.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// capacity, gate-imbalance, under-attendance, critical-alerts or stale-data (live rules);
    /// open-gates, capacity, under-attendance or peak-staffing (scheduled insights).
    pub kind: String,
    pub event_id: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub evidence: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Insights {
    pub attendance_patterns: Vec<HourPattern>,
    pub performance_metrics: Performance,
    /// Rules over the live projections, then those of the scheduled insights (forecast-based:
    /// `open-gates`, `capacity`, `under-attendance`, `peak-staffing`).
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
pub struct TrendPoint {
    pub at: DateTime<Utc>,
    /// Sum over events of each one's last value in the bucket.
    pub total_attendees: i64,
    pub average_attendance_rate: f64,
    pub events: i64,
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
    /// minute, hour or day: the width of chart points.
    pub resolution: String,
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
    pub status: String,
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

/// One event of the catalogue with its realtime row.
#[derive(Debug, Clone)]
struct EventRow {
    event_id: String,
    name: String,
    event_type: String,
    status: String,
    starts_at: Option<DateTime<Utc>>,
    metrics: Option<Metrics>,
}

async fn load_events(
    client: &Client,
    ids: Option<&[String]>,
    event_type: Option<&str>,
    stale_after: Duration,
) -> Result<Vec<EventRow>, Rejection> {
    let rows = client
        .query(
            "SELECT c.event_id, c.name, c.event_type, c.capacity, c.starts_at, c.ends_at,
                    r.status, r.fetched_at, r.total_registered, r.current_attendees,
                    r.attendance_rate, r.observed_at
             FROM event_catalogue c LEFT JOIN event_realtime r USING (event_id)
             WHERE NOT c.removed
               AND ($1::text[] IS NULL OR c.event_id = ANY($1))
               AND ($2::text IS NULL OR c.event_type = $2)
             ORDER BY c.event_id",
            &[&ids, &event_type],
        )
        .await
        .map_err(unavailable)?;
    let now = Utc::now();
    Ok(rows
        .iter()
        .map(|r| {
            let capacity: Option<i64> = r.get(3);
            let status: Option<String> = r.get(6);
            let fetched: Option<DateTime<Utc>> = r.get(7);
            let latest = status.as_deref().zip(fetched);
            let registered: Option<i64> = r.get(8);
            let metrics = registered.map(|registered| {
                let current: i64 = r.get(9);
                Metrics {
                    total_registered: registered,
                    current_attendees: current,
                    attendance_rate: r.get(10),
                    capacity,
                    occupancy: capacity
                        .filter(|c| *c > 0)
                        .map(|c| current as f64 / c as f64),
                    observed_at: r.get(11),
                }
            });
            EventRow {
                event_id: r.get(0),
                name: r.get(1),
                event_type: r.get(2),
                status: public_status(now, r.get(4), r.get(5), latest, stale_after),
                starts_at: r.get(4),
                metrics,
            }
        })
        .collect())
}

pub(crate) fn alert(r: &tokio_postgres::Row) -> Alert {
    Alert {
        alert_id: r.get(0),
        event_id: r.get(1),
        kind: r.get(2),
        subject: r.get(3),
        severity: r.get(4),
        message: r.get(5),
        state: r.get(6),
        raised_at: r.get(7),
        resolved_at: r.get(8),
    }
}

const ALERT_COLUMNS: &str =
    "alert_id, event_id, kind, subject, severity, message, state, raised_at, resolved_at";

/// Active alerts of `ids`, and those raised since `since`, oldest first (at most 1000).
async fn load_alerts(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
) -> Result<Vec<Alert>, Rejection> {
    let rows = client
        .query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts
                 WHERE event_id = ANY($1) AND (state = 'active' OR raised_at >= $2)
                 ORDER BY raised_at, alert_id LIMIT 1000"
            ),
            &[&ids, &since],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows.iter().map(alert).collect())
}

/// First, last and peak attendees of each event over the range.
async fn load_trends(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
    resolution: Resolution,
) -> Result<HashMap<String, Trend>, Rejection> {
    let rows = client
        .query(
            &format!(
                "SELECT event_id,
                        (array_agg(last_attendees ORDER BY bucket))[1],
                        (array_agg(last_attendees ORDER BY bucket DESC))[1],
                        max(attendees_max), min(bucket)
                 FROM {} WHERE event_id = ANY($1) AND bucket >= $2
                 GROUP BY event_id",
                resolution.event_table()
            ),
            &[&ids, &trunc(since, resolution)],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| {
            let (from, to): (i64, i64) = (r.get(1), r.get(2));
            (r.get(0), trend(from, to, r.get(3), r.get(4)))
        })
        .collect())
}

/// The bucket holding `t`, so a range starting mid-bucket still reads that bucket.
fn trunc(t: DateTime<Utc>, resolution: Resolution) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    let step = match resolution {
        Resolution::Minute => TimeDelta::minutes(1),
        Resolution::Hour | Resolution::Day => TimeDelta::hours(1),
    };
    t.duration_trunc(step).unwrap_or(t)
}

pub fn trend(from: i64, to: i64, peak: i64, since: DateTime<Utc>) -> Trend {
    let change = to - from;
    let change_pct = (from != 0).then(|| change as f64 / from as f64);
    let direction = match change_pct {
        Some(p) if p > 0.05 => "rising",
        Some(p) if p < -0.05 => "falling",
        Some(_) => "steady",
        None if change > 0 => "rising",
        None => "steady",
    };
    Trend {
        direction: direction.into(),
        from_attendees: from,
        to_attendees: to,
        change,
        change_pct,
        peak_attendees: peak,
        since,
    }
}

async fn load_chart(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
    resolution: Resolution,
) -> Result<Vec<TrendPoint>, Rejection> {
    let rows = client
        .query(
            &format!(
                "WITH per_event AS (
                    SELECT DISTINCT ON (event_id, b) event_id,
                           date_trunc($3, bucket, 'UTC') AS b, last_attendees,
                           rate_sum / samples AS rate
                    FROM {} WHERE event_id = ANY($1) AND bucket >= $2
                    ORDER BY event_id, b, bucket DESC)
                 SELECT b, sum(last_attendees)::bigint, avg(rate), count(*)
                 FROM per_event GROUP BY b ORDER BY b",
                resolution.event_table()
            ),
            &[&ids, &trunc(since, resolution), &resolution.as_str()],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| TrendPoint {
            at: r.get(0),
            total_attendees: r.get(1),
            average_attendance_rate: r.get(2),
            events: r.get(3),
        })
        .collect())
}

async fn load_patterns(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
) -> Result<Vec<HourPattern>, Rejection> {
    let rows = client
        .query(
            "SELECT extract(hour FROM (s.bucket AT TIME ZONE 'UTC')
                          + make_interval(mins => coalesce(c.utc_offset_minutes, 0)))::int AS h,
                    sum(s.rate_sum) / sum(s.samples), sum(s.samples)::bigint
             FROM event_series_hour s JOIN event_catalogue c USING (event_id)
             WHERE s.event_id = ANY($1) AND s.bucket >= $2
             GROUP BY h ORDER BY h",
            &[&ids, &trunc(since, Resolution::Hour)],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| HourPattern {
            hour_of_day: r.get(0),
            average_attendance_rate: r.get(1),
            samples: r.get(2),
        })
        .collect())
}

async fn load_peak(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
    resolution: Resolution,
) -> Result<Option<Peak>, Rejection> {
    let row = client
        .query_opt(
            &format!(
                "SELECT event_id, attendees_max, bucket FROM {}
                 WHERE event_id = ANY($1) AND bucket >= $2
                 ORDER BY attendees_max DESC, bucket LIMIT 1",
                resolution.event_table()
            ),
            &[&ids, &trunc(since, resolution)],
        )
        .await
        .map_err(unavailable)?;
    Ok(row.map(|r| Peak {
        event_id: r.get(0),
        attendees: r.get(1),
        at: r.get(2),
    }))
}

/// Gate traffic, busiest first. Peaks are per minute while the range fits in the minute
/// series' retention, per hour beyond.
async fn load_gates(
    client: &Client,
    ids: &[String],
    since: DateTime<Utc>,
    resolution: Resolution,
) -> Result<Vec<GateSummary>, Rejection> {
    let (table, window) = match resolution {
        Resolution::Minute | Resolution::Hour => ("gate_series_minute", "minute"),
        Resolution::Day => ("gate_series_hour", "hour"),
    };
    let since = match resolution {
        Resolution::Day => trunc(since, Resolution::Hour),
        _ => trunc(since, Resolution::Minute),
    };
    let rows = client
        .query(
            &format!(
                "SELECT event_id, gate_id, sum(entries)::bigint, sum(exits)::bigint,
                        max(entries)
                 FROM {table} WHERE event_id = ANY($1) AND bucket >= $2
                 GROUP BY event_id, gate_id
                 ORDER BY max(entries) DESC, sum(entries) DESC, event_id, gate_id"
            ),
            &[&ids, &since],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| GateSummary {
            event_id: r.get(0),
            gate_id: r.get(1),
            entries: r.get(2),
            exits: r.get(3),
            peak_entries: r.get(4),
            peak_window: window.into(),
        })
        .collect())
}

fn summary(events: &[EventRow], alerts: &[Alert]) -> Summary {
    let rates: Vec<f64> = events
        .iter()
        .filter_map(|e| e.metrics.as_ref().map(|m| m.attendance_rate))
        .collect();
    Summary {
        total_events: events.len() as i64,
        total_registered: events
            .iter()
            .filter_map(|e| e.metrics.as_ref().map(|m| m.total_registered))
            .sum(),
        total_attendees: events
            .iter()
            .filter_map(|e| e.metrics.as_ref().map(|m| m.current_attendees))
            .sum(),
        average_attendance_rate: mean(&rates),
        active_alerts: alerts.iter().filter(|a| a.state == "active").count() as i64,
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn evidence<const N: usize>(
    pairs: [(&str, serde_json::Value); N],
) -> BTreeMap<String, serde_json::Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The rules behind `recommendations`: each fires on numbers the projections hold and carries
/// them as evidence.
fn recommend(
    events: &[EventRow],
    gates: &[GateSummary],
    alerts: &[Alert],
    now: DateTime<Utc>,
) -> Vec<Recommendation> {
    use serde_json::json;
    let mut out = Vec::new();
    for e in events {
        if e.status == "stale" {
            out.push(Recommendation {
                kind: "stale-data".into(),
                event_id: e.event_id.clone(),
                message: format!(
                    "{}: no fresh numbers; check the service's health and the connector",
                    e.name
                ),
                evidence: evidence([(
                    "observedAt",
                    json!(e.metrics.as_ref().and_then(|m| m.observed_at)),
                )]),
            });
        }
        let Some(m) = &e.metrics else { continue };
        if let (Some(occ), Some(cap)) = (m.occupancy, m.capacity)
            && occ >= 0.9
        {
            out.push(Recommendation {
                kind: "capacity".into(),
                event_id: e.event_id.clone(),
                message: format!(
                    "{}: {} of {} places taken ({:.0} %); prepare overflow space or pause entry",
                    e.name,
                    m.current_attendees,
                    cap,
                    occ * 100.0
                ),
                evidence: evidence([
                    ("currentAttendees", json!(m.current_attendees)),
                    ("capacity", json!(cap)),
                    ("occupancy", json!(occ)),
                ]),
            });
        }
        let live = matches!(e.status.as_str(), "live" | "degraded");
        let started_long_ago = e.starts_at.is_some_and(|s| now - s > Duration::hours(1));
        if live && started_long_ago && m.total_registered > 0 && m.attendance_rate < 0.5 {
            out.push(Recommendation {
                kind: "under-attendance".into(),
                event_id: e.event_id.clone(),
                message: format!(
                    "{}: only {:.0} % of those registered are in more than an hour after the \
                     start; remind the rest",
                    e.name,
                    m.attendance_rate * 100.0
                ),
                evidence: evidence([
                    ("attendanceRate", json!(m.attendance_rate)),
                    ("totalRegistered", json!(m.total_registered)),
                    ("startsAt", json!(e.starts_at)),
                ]),
            });
        }
        let mine: Vec<&GateSummary> = gates.iter().filter(|g| g.event_id == e.event_id).collect();
        if let Some((busiest, others)) = mine.split_first()
            && !others.is_empty()
        {
            let others_mean =
                others.iter().map(|g| g.peak_entries as f64).sum::<f64>() / others.len() as f64;
            if busiest.peak_entries >= 10 && busiest.peak_entries as f64 >= 2.0 * others_mean {
                out.push(Recommendation {
                    kind: "gate-imbalance".into(),
                    event_id: e.event_id.clone(),
                    message: format!(
                        "{}: gate {} peaked at {} entries per {}, {:.1}x the other gates' \
                         average; open more lanes there or direct arrivals elsewhere",
                        e.name,
                        busiest.gate_id,
                        busiest.peak_entries,
                        busiest.peak_window,
                        busiest.peak_entries as f64 / others_mean.max(1.0)
                    ),
                    evidence: evidence([
                        ("gateId", json!(busiest.gate_id)),
                        ("peakEntries", json!(busiest.peak_entries)),
                        ("peakWindow", json!(busiest.peak_window)),
                        ("otherGatesMeanPeak", json!(others_mean)),
                    ]),
                });
            }
        }
        let critical = alerts
            .iter()
            .filter(|a| a.event_id == e.event_id && a.state == "active" && a.severity == "critical")
            .count();
        if critical > 0 {
            out.push(Recommendation {
                kind: "critical-alerts".into(),
                event_id: e.event_id.clone(),
                message: format!(
                    "{}: {critical} critical alert(s) active; act on them first",
                    e.name
                ),
                evidence: evidence([("activeCriticalAlerts", json!(critical))]),
            });
        }
    }
    out
}

#[allow(clippy::too_many_arguments)] // the views of one request, borrowed
async fn insights(
    client: &Client,
    events: &[EventRow],
    alerts: &[Alert],
    gates: &[GateSummary],
    since: DateTime<Utc>,
    resolution: Resolution,
    with_behaviour: bool,
    viewer: &Viewer,
) -> Result<Insights, Rejection> {
    use muster_analytics::insights::forecast::Forecast;
    use muster_analytics::insights::recommend::Recommendation as Scheduled;
    // A partner never reads another event's id, not even as a forecast's evidence.
    let partner = matches!(viewer, Viewer::Partner(_));
    let redact_rec = |r: Scheduled| if partner { r.redacted() } else { r };
    let redact = |f: Forecast| if partner { f.redacted() } else { f };
    use muster_analytics::insights::tables as store;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let pg: &tokio_postgres::Client = client;
    let mut recommendations = recommend(events, gates, alerts, Utc::now());
    recommendations.extend(
        store::recommendations(pg, Some(&ids))
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(redact_rec)
            .map(|r| Recommendation {
                kind: r.kind,
                event_id: r.event_id,
                message: r.message,
                evidence: r.evidence,
            }),
    );
    let behaviour = if with_behaviour {
        store::behaviour(pg, &ids).await.map_err(unavailable)?
    } else {
        Vec::new()
    };
    let occupancies: Vec<f64> = events
        .iter()
        .filter_map(|e| e.metrics.as_ref().and_then(|m| m.occupancy))
        .collect();
    Ok(Insights {
        attendance_patterns: load_patterns(client, &ids, since).await?,
        performance_metrics: Performance {
            peak_attendees: load_peak(client, &ids, since, resolution).await?,
            entries: gates.iter().map(|g| g.entries).sum(),
            exits: gates.iter().map(|g| g.exits).sum(),
            busiest_gate: gates.first().cloned(),
            average_occupancy: (!occupancies.is_empty()).then(|| mean(&occupancies)),
        },
        recommendations,
        forecasts: store::forecasts(pg, Some(&ids))
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(redact)
            .collect(),
        roi: store::roi(pg, Some(&ids)).await.map_err(unavailable)?,
        behaviour,
        computed_at: store::latest_run(pg)
            .await
            .map_err(unavailable)?
            .map(|r| r.computed_at),
    })
}

async fn connect(pool: &deadpool_postgres::Pool) -> Result<Client, Rejection> {
    pool.get().await.map_err(unavailable)
}

/// `GET /api/dashboard`.
#[utoipa::path(get, path = "/api/dashboard", tag = "dashboard",
    security(("api_key" = []), ("admin_token" = [])),
    params(DashboardQuery),
    responses(
        (status = 200, body = Dashboard),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn dashboard(
    query: DashboardQuery,
    viewer: Viewer,
    pool: deadpool_postgres::Pool,
    stale_after: Duration,
) -> Result<Dashboard, Rejection> {
    let span = span(query.time_range.as_deref())?;
    let resolution = Resolution::for_span(span);
    let to = Utc::now();
    let since = to - span;
    let client = connect(&pool).await?;
    let mut events = load_events(
        &client,
        viewer.event_ids(),
        query.event_type.as_deref(),
        stale_after,
    )
    .await?;
    if let Some(status) = query.status {
        events.retain(|e| e.status == status.as_str());
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let alerts = load_alerts(&client, &ids, since).await?;
    let mut trends = load_trends(&client, &ids, since, resolution).await?;
    let gates = load_gates(&client, &ids, since, resolution).await?;
    let insights = insights(
        &client, &events, &alerts, &gates, since, resolution, false, &viewer,
    )
    .await?;
    let attendance_trend = load_chart(&client, &ids, since, resolution).await?;
    let event_comparison = events
        .iter()
        .map(|e| Comparison {
            event_id: e.event_id.clone(),
            event_name: e.name.clone(),
            current_attendees: e.metrics.as_ref().map_or(0, |m| m.current_attendees),
            attendance_rate: e.metrics.as_ref().map_or(0.0, |m| m.attendance_rate),
            peak_attendees: trends.get(&e.event_id).map(|t| t.peak_attendees),
        })
        .collect();
    let summary = summary(&events, &alerts);
    let events = events
        .into_iter()
        .map(|e| DashboardEvent {
            alerts: alerts
                .iter()
                .filter(|a| a.event_id == e.event_id && a.state == "active")
                .cloned()
                .collect(),
            trend: trends.remove(&e.event_id),
            event_id: e.event_id,
            event_name: e.name,
            event_type: e.event_type,
            status: e.status,
            metrics: e.metrics,
        })
        .collect();
    Ok(Dashboard {
        time_range: query.time_range.unwrap_or_else(|| "24h".into()),
        from: since,
        to,
        resolution: resolution.as_str().into(),
        summary,
        events,
        insights,
        charts: Charts {
            attendance_trend,
            event_comparison,
            alerts_timeline: alerts,
        },
    })
}

/// `GET /api/events/{eventId}/insights`.
#[utoipa::path(get, path = "/api/events/{eventId}/insights", tag = "dashboard",
    security(("api_key" = []), ("admin_token" = [])),
    params(("eventId" = String, Path, description = "The event's id"), InsightsQuery),
    responses(
        (status = 200, body = EventInsights),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn event_insights(
    event_id: String,
    query: InsightsQuery,
    viewer: Viewer,
    pool: deadpool_postgres::Pool,
    stale_after: Duration,
) -> Result<EventInsights, Rejection> {
    viewer.check(&event_id)?;
    let span = span(query.time_range.as_deref())?;
    let resolution = Resolution::for_span(span);
    let to = Utc::now();
    let since = to - span;
    let client = connect(&pool).await?;
    let ids = [event_id.clone()];
    let events = load_events(&client, Some(&ids), None, stale_after).await?;
    let Some(event) = events.first() else {
        return Err(crate::problem::not_found(format!(
            "no event {event_id} in the catalogue"
        )));
    };
    let alerts = load_alerts(&client, &ids, since).await?;
    let gates = load_gates(&client, &ids, since, resolution).await?;
    let mut trends = load_trends(&client, &ids, since, resolution).await?;
    let insights = insights(
        &client, &events, &alerts, &gates, since, resolution, true, &viewer,
    )
    .await?;
    Ok(EventInsights {
        event_id: event.event_id.clone(),
        event_name: event.name.clone(),
        status: event.status.clone(),
        time_range: query.time_range.unwrap_or_else(|| "24h".into()),
        from: since,
        to,
        metrics: event.metrics.clone(),
        trend: trends.remove(&event_id),
        insights,
        gates,
    })
}

/// `GET /api/partner/analytics/summary`: totals over the viewer's events.
#[utoipa::path(get, path = "/api/partner/analytics/summary", tag = "partner",
    security(("api_key" = [])),
    responses(
        (status = 200, body = AnalyticsSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn analytics_summary(
    viewer: Viewer,
    pool: deadpool_postgres::Pool,
    stale_after: Duration,
) -> Result<AnalyticsSummary, Rejection> {
    let client = connect(&pool).await?;
    let events = load_events(&client, viewer.event_ids(), None, stale_after).await?;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let since = Utc::now() - Duration::hours(24);
    let alerts = load_alerts(&client, &ids, since).await?;
    let mut by_type: BTreeMap<&str, Vec<&EventRow>> = BTreeMap::new();
    for e in &events {
        by_type.entry(&e.event_type).or_default().push(e);
    }
    let by_type = by_type
        .into_iter()
        .map(|(t, es)| {
            let owned: Vec<EventRow> = es.into_iter().cloned().collect();
            let s = summary(&owned, &[]);
            TypeSummary {
                event_type: t.to_owned(),
                events: s.total_events,
                total_registered: s.total_registered,
                total_attendees: s.total_attendees,
                average_attendance_rate: s.average_attendance_rate,
            }
        })
        .collect();
    Ok(AnalyticsSummary {
        summary: summary(&events, &alerts),
        live_events: events.iter().filter(|e| e.status == "live").count() as i64,
        alerts_last_24h: alerts.iter().filter(|a| a.raised_at >= since).count() as i64,
        by_type,
    })
}

/// The statuses a reader sees (see `events::public_status`); a filter value outside them is a
/// 400, so a typo does not read as "no events".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Scheduled,
    Live,
    Idle,
    Degraded,
    Ended,
    Stale,
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::Idle => "idle",
            Self::Degraded => "degraded",
            Self::Ended => "ended",
            Self::Stale => "stale",
            Self::Pending => "pending",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_direction_has_a_dead_band() {
        let t0 = Utc::now();
        assert_eq!(trend(100, 120, 130, t0).direction, "rising");
        assert_eq!(trend(100, 103, 130, t0).direction, "steady");
        assert_eq!(trend(100, 80, 130, t0).direction, "falling");
        assert_eq!(trend(0, 5, 5, t0).direction, "rising");
        assert_eq!(trend(0, 5, 5, t0).change_pct, None);
        assert_eq!(trend(0, 0, 0, t0).direction, "steady");
    }

    fn event(id: &str, current: i64, registered: i64, capacity: Option<i64>) -> EventRow {
        EventRow {
            event_id: id.into(),
            name: id.into(),
            event_type: "conference".into(),
            status: "live".into(),
            starts_at: Some(Utc::now() - Duration::hours(3)),
            metrics: Some(Metrics {
                total_registered: registered,
                current_attendees: current,
                attendance_rate: current as f64 / registered as f64,
                capacity,
                occupancy: capacity.map(|c| current as f64 / c as f64),
                observed_at: None,
            }),
        }
    }

    fn gate(event: &str, gate: &str, peak: i64) -> GateSummary {
        GateSummary {
            event_id: event.into(),
            gate_id: gate.into(),
            entries: peak * 10,
            exits: 0,
            peak_entries: peak,
            peak_window: "minute".into(),
        }
    }

    #[test]
    fn recommendations_fire_on_their_evidence_only() {
        let events = [
            event("full", 950, 1000, Some(1000)),
            event("calm", 700, 1000, Some(2000)),
            event("empty", 100, 1000, None),
        ];
        let gates = [
            gate("calm", "A", 40),
            gate("calm", "B", 10),
            gate("calm", "C", 8),
            gate("full", "A", 12),
            gate("full", "B", 11),
        ];
        let kinds: Vec<(String, String)> = recommend(&events, &gates, &[], Utc::now())
            .into_iter()
            .map(|r| (r.event_id, r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("full".into(), "capacity".into()),
                ("calm".into(), "gate-imbalance".into()),
                ("empty".into(), "under-attendance".into()),
            ]
        );
    }

    #[test]
    fn summary_leaves_events_without_numbers_out_of_the_mean() {
        let mut pending = event("p", 0, 1, None);
        pending.metrics = None;
        let s = summary(
            &[
                event("a", 50, 100, None),
                event("b", 10, 100, None),
                pending,
            ],
            &[],
        );
        assert_eq!(s.total_events, 3);
        assert_eq!(s.total_attendees, 60);
        assert!((s.average_attendance_rate - 0.3).abs() < 1e-12);
    }
}
