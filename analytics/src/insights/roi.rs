//! Return on investment: revenue (registrations × ticket price) against cost, per event and per
//! type. Amounts are only ever added within one currency.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::outcomes::{Outcome, Phase};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Roi {
    /// `event` (subject is an event id) or `eventType` (subject is a type).
    pub scope: String,
    pub subject: String,
    pub event_type: String,
    pub currency: Option<String>,
    /// Events summed (1 for an event).
    pub events: i64,
    /// Whether every event summed has ended (figures are final).
    pub complete: bool,
    pub registered: i64,
    pub attendees: i64,
    /// Income besides tickets, as registered; part of `revenue`.
    pub other_income: Option<f64>,
    /// Registrations × ticket price, plus other income.
    pub revenue: Option<f64>,
    pub cost: Option<f64>,
    /// revenue − cost.
    pub profit: Option<f64>,
    /// (revenue − cost) / cost.
    pub roi: Option<f64>,
    pub cost_per_attendee: Option<f64>,
    pub revenue_per_attendee: Option<f64>,
}

fn ratio(a: Option<f64>, b: f64) -> Option<f64> {
    (b > 0.0).then_some(a?).map(|a| a / b)
}

fn finish(mut r: Roi) -> Roi {
    r.profit = match (r.revenue, r.cost) {
        (Some(v), Some(c)) => Some(v - c),
        _ => None,
    };
    r.roi = match (r.profit, r.cost) {
        (Some(p), Some(c)) if c > 0.0 => Some(p / c),
        _ => None,
    };
    r.cost_per_attendee = ratio(r.cost, r.attendees as f64);
    r.revenue_per_attendee = ratio(r.revenue, r.attendees as f64);
    r
}

/// Per event with a price or a cost, then per type and currency.
pub fn compute(outcomes: &[Outcome], now: DateTime<Utc>) -> Vec<Roi> {
    let mut out: Vec<Roi> = outcomes
        .iter()
        .filter(|o| o.ticket_price.is_some() || o.cost_total.is_some() || o.other_income.is_some())
        .map(|o| {
            let registered = o.registered.unwrap_or(0);
            // Unknown registrations are no revenue to report, not a revenue of zero.
            let tickets = o
                .registered
                .and(o.ticket_price)
                .map(|p| p * registered as f64);
            let revenue = match (tickets, o.other_income) {
                (None, None) => None,
                (t, i) => Some(t.unwrap_or(0.0) + i.unwrap_or(0.0)),
            };
            finish(Roi {
                scope: "event".into(),
                subject: o.event_id.clone(),
                event_type: o.event_type.clone(),
                currency: o.currency.clone(),
                events: 1,
                complete: o.phase(now) == Phase::Ended,
                registered,
                attendees: o.checked_in.unwrap_or(0),
                other_income: o.other_income,
                revenue,
                cost: o.cost_total,
                profit: None,
                roi: None,
                cost_per_attendee: None,
                revenue_per_attendee: None,
            })
        })
        .collect();
    let types = by_type(&out);
    out.extend(types);
    out
}

/// The event rows of `events` summed per type and currency.
pub fn by_type(events: &[Roi]) -> Vec<Roi> {
    let mut types: BTreeMap<(String, Option<String>), Roi> = BTreeMap::new();
    for event in events.iter().filter(|r| r.scope == "event") {
        let t = types
            .entry((event.event_type.clone(), event.currency.clone()))
            .or_insert_with(|| Roi {
                scope: "eventType".into(),
                subject: event.event_type.clone(),
                event_type: event.event_type.clone(),
                currency: event.currency.clone(),
                events: 0,
                complete: true,
                registered: 0,
                attendees: 0,
                other_income: None,
                revenue: Some(0.0),
                cost: Some(0.0),
                profit: None,
                roi: None,
                cost_per_attendee: None,
                revenue_per_attendee: None,
            });
        t.events += 1;
        t.complete &= event.complete;
        t.registered += event.registered;
        t.attendees += event.attendees;
        t.other_income = match (t.other_income, event.other_income) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        // A type's revenue or cost is only known if every event's is.
        t.revenue = t.revenue.zip(event.revenue).map(|(a, b)| a + b);
        t.cost = t.cost.zip(event.cost).map(|(a, b)| a + b);
    }
    types.into_values().map(finish).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, price: Option<f64>, cost: Option<f64>, reg: i64, came: i64) -> Outcome {
        Outcome {
            event_id: id.into(),
            event_type: "conference".into(),
            capacity: None,
            starts_at: None,
            ends_at: None,
            utc_offset_minutes: 0,
            ticket_price: price,
            cost_total: cost,
            other_income: None,
            currency: Some("EUR".into()),
            registered: Some(reg),
            checked_in: Some(came),
            peak_attendees: None,
            peak_entries_per_minute: None,
            peak_at: None,
            peak_gate_entries_per_minute: None,
            gates_used: None,
            gates_open: None,
        }
    }

    #[test]
    fn revenue_cost_and_per_attendee() {
        let out = compute(
            &[
                outcome("a", Some(50.0), Some(30_000.0), 1000, 800),
                outcome("b", Some(20.0), Some(10_000.0), 400, 250),
            ],
            Utc::now(),
        );
        let a = &out[0];
        assert_eq!(a.revenue, Some(50_000.0));
        assert_eq!(a.profit, Some(20_000.0));
        assert_eq!(a.cost_per_attendee, Some(37.5));
        let t = out.iter().find(|r| r.scope == "eventType").unwrap();
        assert_eq!(
            (t.events, t.revenue, t.cost),
            (2, Some(58_000.0), Some(40_000.0))
        );
        assert!((t.roi.unwrap() - 0.45).abs() < 1e-12);
    }
}
