//! Forecasts from similar past events: the nearest ended events of the same type (by local
//! weekday, local start hour and size) give the expected show-up rate with a prediction
//! interval (Student's t), the final attendance, the arrival peak, the gates it needs and the
//! risks. The same method, run on every past event with only what had ended before it started,
//! gives its backtested error (MAPE), reported with every forecast.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::outcomes::{Outcome, Phase};

/// How forecasts are made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastConfig {
    /// How many similar past events a forecast uses.
    pub neighbours: usize,
    /// Fewer similar past events than this: no forecast.
    pub min_neighbours: usize,
    /// Coverage of the prediction interval (0.8 = 80 %).
    pub interval: f64,
    /// A show-up rate expected below this is an under-attendance risk.
    pub under_attendance_below: f64,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            neighbours: 5,
            // Two would let a mean and a spread give both events' own rates back.
            min_neighbours: 3,
            interval: 0.8,
            under_attendance_below: 0.6,
        }
    }
}

/// A range with its centre.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

/// Something that may go wrong, with the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Risk {
    /// `capacity-overflow` or `under-attendance`.
    pub kind: String,
    /// `likely` (the expected value crosses the line) or `possible` (only the interval does).
    pub likelihood: String,
    pub message: String,
}

/// The method's error on past events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backtest {
    /// Past events forecast (those with enough history before them).
    pub events: usize,
    /// Mean absolute percentage error of the final attendance, in percent.
    pub mape: Option<f64>,
    /// Share of past events whose attendance fell inside the interval.
    pub interval_coverage: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    pub event_id: String,
    pub event_type: String,
    /// `upcoming` or `ongoing`.
    pub phase: String,
    pub registered: i64,
    pub show_up_rate: Estimate,
    pub final_attendance: Estimate,
    pub peak_attendees: Option<Estimate>,
    /// Entries per minute over all gates at the busiest minute.
    pub peak_entries_per_minute: Option<f64>,
    pub peak_at: Option<DateTime<Utc>>,
    /// Entries per minute one gate took at its busiest in the similar events (median).
    pub gate_entries_per_minute: Option<f64>,
    pub gates_needed: Option<i64>,
    pub gates_open: Option<i64>,
    pub risks: Vec<Risk>,
    /// The past events it stands on, nearest first (left out of partners' answers: they
    /// may be other partners' events).
    pub similar_events: Vec<String>,
    pub similar_event_count: usize,
    /// The method's backtest over this type's past events (all types when this one has none).
    pub backtest: Backtest,
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// Mean and prediction interval of one more draw from `xs` (Student's t, `level` coverage).
pub fn predict(xs: &[f64], level: f64) -> Option<Estimate> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let m = mean(xs);
    let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .ok()?
        .inverse_cdf(0.5 + level / 2.0);
    let half = t * sd * (1.0 + 1.0 / n as f64).sqrt();
    Some(Estimate {
        expected: m,
        low: m - half,
        high: m + half,
    })
}

/// How unlike `past` is to `target`: 1 for another weekday, plus the start hours' distance in
/// half-days, plus the size ratio's log.
fn distance(target: &Outcome, registered: i64, past: &Outcome) -> f64 {
    let (Some((wd_t, h_t)), Some((wd_p, h_p))) = (target.local_start(), past.local_start()) else {
        return f64::INFINITY;
    };
    let hours = (h_t as i32 - h_p as i32).unsigned_abs();
    let hours = hours.min(24 - hours) as f64 / 12.0;
    let size = match past.registered {
        Some(p) if p > 0 && registered > 0 => (registered as f64 / p as f64).ln().abs(),
        _ => f64::INFINITY,
    };
    f64::from(u8::from(wd_t != wd_p)) + hours + size
}

/// The nearest ended events of `target`'s type, ended before `cutoff`, with a known show-up.
fn similar<'a>(
    target: &Outcome,
    registered: i64,
    history: &'a [Outcome],
    cutoff: DateTime<Utc>,
    cfg: &ForecastConfig,
) -> Vec<&'a Outcome> {
    let mut found: Vec<(f64, &Outcome)> = history
        .iter()
        .filter(|p| {
            p.event_id != target.event_id
                && p.event_type == target.event_type
                && p.phase(cutoff) == Phase::Ended
                && p.show_up_rate().is_some()
        })
        .map(|p| (distance(target, registered, p), p))
        .filter(|(d, _)| d.is_finite())
        .collect();
    // Equally similar: the most recent first (habits drift), then by id for a stable answer.
    found.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| b.1.starts_at.cmp(&a.1.starts_at))
            .then_with(|| a.1.event_id.cmp(&b.1.event_id))
    });
    found.truncate(cfg.neighbours);
    found.into_iter().map(|(_, p)| p).collect()
}

/// The forecast of `target` from `history` as it stood at `cutoff` (no backtest filled in).
pub fn forecast_one(
    target: &Outcome,
    history: &[Outcome],
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    cfg: &ForecastConfig,
) -> Option<Forecast> {
    let registered = target.registered.filter(|r| *r > 0)?;
    let near = similar(target, registered, history, cutoff, cfg);
    if near.len() < cfg.min_neighbours.max(2) {
        return None;
    }
    let reg = registered as f64;
    let rates: Vec<f64> = near.iter().filter_map(|p| p.show_up_rate()).collect();
    let rate = predict(&rates, cfg.interval)?;
    let rate = Estimate {
        expected: rate.expected.clamp(0.0, 1.0),
        low: rate.low.clamp(0.0, 1.0),
        high: rate.high.clamp(0.0, 1.0),
    };
    // Who is already in is the least the event ends with.
    let floor = target.checked_in.unwrap_or(0) as f64;
    let attendance = Estimate {
        expected: (rate.expected * reg).round().max(floor),
        low: (rate.low * reg).round().max(floor),
        high: (rate.high * reg).round().max(floor),
    };
    let peak_ratios: Vec<f64> = near
        .iter()
        .filter_map(|p| Some(p.peak_attendees? as f64 / p.registered? as f64))
        .collect();
    let peak_attendees = predict(&peak_ratios, cfg.interval).map(|e| Estimate {
        expected: (e.expected * reg).round(),
        low: (e.low * reg).round().max(0.0),
        high: (e.high * reg).round(),
    });
    let entry_ratios: Vec<f64> = near
        .iter()
        .filter_map(|p| Some(p.peak_entries_per_minute? as f64 / p.registered? as f64))
        .collect();
    let peak_entries = (!entry_ratios.is_empty()).then(|| mean(&entry_ratios) * reg);
    let mut offsets: Vec<f64> = near
        .iter()
        .filter_map(|p| p.peak_offset_minutes().map(|m| m as f64))
        .collect();
    let peak_at = median(&mut offsets)
        .and_then(|m| Some(target.starts_at? + Duration::minutes(m.round() as i64)));
    let mut per_gate: Vec<f64> = near
        .iter()
        .filter_map(|p| p.peak_gate_entries_per_minute.map(|g| g as f64))
        .filter(|g| *g > 0.0)
        .collect();
    let gate_rate = median(&mut per_gate);
    let gates_needed = match (peak_entries, gate_rate) {
        (Some(p), Some(g)) => Some((p / g).ceil().max(1.0) as i64),
        _ => None,
    };
    let mut risks = Vec::new();
    if let (Some(cap), Some(peak)) = (target.capacity, peak_attendees) {
        let cap = cap as f64;
        if peak.expected > cap {
            risks.push(Risk {
                kind: "capacity-overflow".into(),
                likelihood: "likely".into(),
                message: format!(
                    "expected peak of {:.0} attendees at once is over the capacity of {cap:.0}",
                    peak.expected
                ),
            });
        } else if peak.high > cap {
            risks.push(Risk {
                kind: "capacity-overflow".into(),
                likelihood: "possible".into(),
                message: format!(
                    "the peak may reach {:.0} attendees at once, over the capacity of {cap:.0}",
                    peak.high
                ),
            });
        }
    }
    let line = cfg.under_attendance_below;
    if rate.expected < line {
        risks.push(Risk {
            kind: "under-attendance".into(),
            likelihood: "likely".into(),
            message: format!(
                "expected show-up of {:.0} % is under {:.0} %",
                rate.expected * 100.0,
                line * 100.0
            ),
        });
    } else if rate.low < line {
        risks.push(Risk {
            kind: "under-attendance".into(),
            likelihood: "possible".into(),
            message: format!(
                "show-up may fall to {:.0} %, under {:.0} %",
                rate.low * 100.0,
                line * 100.0
            ),
        });
    }
    Some(Forecast {
        event_id: target.event_id.clone(),
        event_type: target.event_type.clone(),
        phase: match target.phase(now) {
            Phase::Ongoing => "ongoing",
            _ => "upcoming",
        }
        .into(),
        registered,
        show_up_rate: rate,
        final_attendance: attendance,
        peak_attendees,
        peak_entries_per_minute: peak_entries,
        peak_at,
        gate_entries_per_minute: gate_rate,
        gates_needed,
        gates_open: target.gates_open,
        risks,
        similar_events: near.iter().map(|p| p.event_id.clone()).collect(),
        similar_event_count: near.len(),
        backtest: Backtest::default(),
    })
}

impl Forecast {
    /// What a partner may see: no other event's id.
    pub fn redacted(mut self) -> Self {
        self.similar_events.clear();
        self
    }
}

/// Every past event forecast from the events that had ended before it started.
/// Returns per type and over all types.
pub fn backtest(
    history: &[Outcome],
    now: DateTime<Utc>,
    cfg: &ForecastConfig,
) -> (std::collections::BTreeMap<String, Backtest>, Backtest) {
    let mut errors: std::collections::BTreeMap<String, Vec<(f64, bool)>> = Default::default();
    for e in history.iter().filter(|e| e.phase(now) == Phase::Ended) {
        let (Some(start), Some(actual)) = (e.starts_at, e.checked_in) else {
            continue;
        };
        if actual <= 0 {
            continue;
        }
        // As if it had not started: nothing of its own attendance is known.
        let blind = Outcome {
            checked_in: None,
            ..e.clone()
        };
        let Some(f) = forecast_one(&blind, history, start, start, cfg) else {
            continue;
        };
        let a = actual as f64;
        let ape = (f.final_attendance.expected - a).abs() / a;
        let inside = f.final_attendance.low <= a && a <= f.final_attendance.high;
        errors
            .entry(e.event_type.clone())
            .or_default()
            .push((ape, inside));
    }
    let summarize = |xs: &[(f64, bool)]| Backtest {
        events: xs.len(),
        mape: (!xs.is_empty())
            .then(|| 100.0 * xs.iter().map(|x| x.0).sum::<f64>() / xs.len() as f64),
        interval_coverage: (!xs.is_empty())
            .then(|| xs.iter().filter(|x| x.1).count() as f64 / xs.len() as f64),
    };
    let all: Vec<(f64, bool)> = errors.values().flatten().copied().collect();
    (
        errors
            .iter()
            .map(|(t, xs)| (t.clone(), summarize(xs)))
            .collect(),
        summarize(&all),
    )
}

/// Forecasts of every upcoming and ongoing event, each with its type's backtest; and the
/// backtest per type and overall.
pub fn forecast_all(
    history: &[Outcome],
    now: DateTime<Utc>,
    cfg: &ForecastConfig,
) -> (
    Vec<Forecast>,
    std::collections::BTreeMap<String, Backtest>,
    Backtest,
) {
    let (by_type, all) = backtest(history, now, cfg);
    let forecasts = history
        .iter()
        .filter(|e| matches!(e.phase(now), Phase::Upcoming | Phase::Ongoing))
        .filter_map(|e| forecast_one(e, history, now, now, cfg))
        .map(|mut f| {
            f.backtest = by_type
                .get(&f.event_type)
                .cloned()
                .unwrap_or_else(|| all.clone());
            f
        })
        .collect();
    (forecasts, by_type, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_students_t() {
        // n = 4, mean 0.7, sd of [0.6, 0.7, 0.7, 0.8] = 0.08165; t(0.9, 3) = 1.6377.
        let e = predict(&[0.6, 0.7, 0.7, 0.8], 0.8).unwrap();
        let half = 1.637_744 * 0.081_649_66 * (1.25f64).sqrt();
        assert!((e.expected - 0.7).abs() < 1e-12);
        assert!((e.high - 0.7 - half).abs() < 1e-5, "{e:?}");
        assert!(predict(&[0.5], 0.8).is_none());
    }

    #[test]
    fn medians_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
