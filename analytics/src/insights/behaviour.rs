//! Behaviour from pseudonymized check-ins (the archive's `archive_checkins`): when people arrive
//! relative to the event's start, how long they stay (in → out), how often they come back in,
//! and when they leave for good. Participants are only ever counted, never listed.
//!
//! k-anonymity: a bin of one event with fewer than `k` participants is suppressed, and so is,
//! when the suppressed bins of a measure add up to fewer than `k` (a total known elsewhere, such
//! as the check-in count, minus the shown bins would reveal them), the next smallest, until
//! they reach `k`. A bin of an event type is the sum of its events' *shown* bins. So every
//! published count is a sum of groups of at least `k` people, none includes a suppressed group,
//! and no difference of published counts isolates fewer than `k` people. Only whole events are
//! counted (those starting in the range), so a moving range never slices one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sql_rows;

/// What a bin measures.
pub const MEASURES: [&str; 4] = ["arrival", "dwell", "reentries", "dropoff"];

/// One shown bin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bin {
    /// `event` (subject is an event id) or `eventType` (subject is a type).
    pub scope: String,
    pub subject: String,
    /// `arrival`: first entry, minutes from the start (15-minute bins, clamped to −120…480);
    /// `dwell`: minutes inside (0, 15, 30, 60, 120, 240+); `reentries`: entries after the first
    /// (0, 1, 2, 3 = 3 or more); `dropoff`: last exit, minutes from the start (hourly, −60…720).
    pub measure: String,
    pub bucket: i64,
    pub label: String,
    pub participants: i64,
}

/// Per event, measure and bucket, the participants in the bin, of the events starting in
/// `[from, to)` (suppression is `assemble`'s).
pub fn sql(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "WITH scans AS (
            SELECT DISTINCT event_id, participant, direction,
                   CAST(date_part('epoch', scanned_at) AS BIGINT) AS at
            FROM archive_checkins
            WHERE date >= '{fd}' AND date <= '{td}'),
         ordered AS (
            SELECT event_id, participant, direction, at,
                   lag(direction) OVER (PARTITION BY event_id, participant ORDER BY at) AS prev_direction,
                   lag(at) OVER (PARTITION BY event_id, participant ORDER BY at) AS prev_at,
                   row_number() OVER (PARTITION BY event_id, participant ORDER BY at DESC) AS from_last
            FROM scans),
         people AS (
            SELECT event_id, participant,
                   min(CASE WHEN direction = 'in' THEN at END) AS first_in,
                   sum(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS entries,
                   sum(CASE WHEN direction = 'out' AND prev_direction = 'in' THEN at - prev_at END) AS dwell,
                   max(CASE WHEN from_last = 1 AND direction = 'out' THEN at END) AS left_at
            FROM ordered GROUP BY event_id, participant),
         joined AS (
            SELECT p.*, CAST(date_part('epoch', c.starts_at) AS BIGINT) AS starts
            FROM people p JOIN event_catalogue c ON c.event_id = p.event_id
            WHERE p.first_in IS NOT NULL
              AND date_part('epoch', c.starts_at) >= {f} AND date_part('epoch', c.starts_at) < {t}),
         bins AS (
            SELECT event_id, 'arrival' AS measure,
                   greatest(-120, least(480, CAST(floor((first_in - starts) / 900.0) AS BIGINT) * 15)) AS bucket
            FROM joined WHERE starts IS NOT NULL
            UNION ALL
            SELECT event_id, 'dwell',
                   CASE WHEN dwell < 900 THEN 0 WHEN dwell < 1800 THEN 15 WHEN dwell < 3600 THEN 30
                        WHEN dwell < 7200 THEN 60 WHEN dwell < 14400 THEN 120 ELSE 240 END
            FROM joined WHERE dwell IS NOT NULL
            UNION ALL
            SELECT event_id, 'reentries', CAST(least(entries - 1, 3) AS BIGINT) FROM joined
            UNION ALL
            SELECT event_id, 'dropoff',
                   greatest(-60, least(720, CAST(floor((left_at - starts) / 3600.0) AS BIGINT) * 60))
            FROM joined WHERE starts IS NOT NULL AND left_at IS NOT NULL)
         SELECT b.event_id, c.event_type, b.measure, b.bucket, count(*) AS participants
         FROM bins b JOIN event_catalogue c ON c.event_id = b.event_id
         GROUP BY b.event_id, c.event_type, b.measure, b.bucket",
        // Scans may come days before the start (early arrivals, set-up).
        fd = (from - chrono::Duration::days(2)).format("%Y-%m-%d"),
        td = to.format("%Y-%m-%d"),
        f = from.timestamp(),
        t = to.timestamp(),
    )
}

#[derive(Debug, Deserialize)]
struct EventBin {
    event_id: String,
    event_type: String,
    measure: String,
    bucket: i64,
    participants: i64,
}

/// The shown bins of every event with check-ins in `[from, to)`, then of every type.
pub async fn compute(
    ctx: &datafusion::prelude::SessionContext,
    k: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<Bin>> {
    let rows: Vec<EventBin> = sql_rows(ctx, &sql(from, to)).await?;
    Ok(assemble(rows, k))
}

/// The bins of one event's measure that may be shown: none under `k`, and none whose
/// suppression would leave fewer than `k` people suppressed in all.
fn suppress(mut bins: Vec<EventBin>, k: i64) -> Vec<EventBin> {
    bins.sort_by_key(|b| (b.participants, b.bucket));
    let mut hidden = 0;
    let mut first_shown = 0;
    while first_shown < bins.len()
        && (bins[first_shown].participants < k || (hidden > 0 && hidden < k))
    {
        hidden += bins[first_shown].participants;
        first_shown += 1;
    }
    bins.split_off(first_shown)
}

fn assemble(rows: Vec<EventBin>, k: usize) -> Vec<Bin> {
    let mut groups: BTreeMap<(String, String), Vec<EventBin>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.event_id.clone(), r.measure.clone()))
            .or_default()
            .push(r);
    }
    let mut by_type: BTreeMap<(String, String, i64), i64> = BTreeMap::new();
    let mut out = Vec::new();
    for r in groups.into_values().flat_map(|g| suppress(g, k as i64)) {
        *by_type
            .entry((r.event_type.clone(), r.measure.clone(), r.bucket))
            .or_default() += r.participants;
        out.push(Bin {
            scope: "event".into(),
            label: label(&r.measure, r.bucket),
            subject: r.event_id,
            measure: r.measure,
            bucket: r.bucket,
            participants: r.participants,
        });
    }
    for ((event_type, measure, bucket), participants) in by_type {
        out.push(Bin {
            scope: "eventType".into(),
            label: label(&measure, bucket),
            subject: event_type,
            measure,
            bucket,
            participants,
        });
    }
    out.sort_by(|a, b| {
        (&a.scope, &a.subject, &a.measure, a.bucket)
            .cmp(&(&b.scope, &b.subject, &b.measure, b.bucket))
    });
    out
}

/// A bin's bounds in words.
pub fn label(measure: &str, bucket: i64) -> String {
    match measure {
        "arrival" if bucket <= -120 => "2 h or more before the start".into(),
        "arrival" if bucket >= 480 => "8 h or more after the start".into(),
        "arrival" => format!("{bucket} to {} min from the start", bucket + 15),
        "dwell" => match bucket {
            0 => "under 15 min".into(),
            15 => "15 to 30 min".into(),
            30 => "30 to 60 min".into(),
            60 => "1 to 2 h".into(),
            120 => "2 to 4 h".into(),
            _ => "4 h or more".into(),
        },
        "reentries" if bucket >= 3 => "3 or more re-entries".into(),
        "reentries" if bucket == 1 => "1 re-entry".into(),
        "reentries" => format!("{bucket} re-entries"),
        "dropoff" if bucket <= -60 => "left before the start".into(),
        "dropoff" if bucket >= 720 => "left 12 h or more after the start".into(),
        "dropoff" => format!(
            "left {} to {} h after the start",
            bucket / 60,
            bucket / 60 + 1
        ),
        _ => format!("{measure} {bucket}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(event: &str, measure: &str, bucket: i64, participants: i64) -> EventBin {
        EventBin {
            event_id: event.into(),
            event_type: "expo".into(),
            measure: measure.into(),
            bucket,
            participants,
        }
    }

    #[test]
    fn types_sum_only_the_shown_bins_of_their_events() {
        let out = assemble(
            vec![
                bin("a", "dwell", 30, 12),
                bin("b", "dwell", 30, 10),
                bin("b", "dwell", 60, 9), // under k: must vanish everywhere
                bin("b", "dwell", 120, 30),
            ],
            10,
        );
        assert!(out.iter().all(|b| b.participants >= 10));
        let expo: Vec<_> = out.iter().filter(|b| b.scope == "eventType").collect();
        // b's 9 alone would be revealed by b's total: its 10 goes too; 30 and a's 12 stay.
        assert_eq!(expo.len(), 2);
        assert_eq!((expo[0].bucket, expo[0].participants), (30, 12));
        assert_eq!((expo[1].bucket, expo[1].participants), (120, 30));
        assert!(!out.iter().any(|b| b.bucket == 60));
    }

    #[test]
    fn suppression_stops_once_k_are_hidden() {
        let kept = suppress(
            vec![
                bin("a", "arrival", 0, 3),
                bin("a", "arrival", 15, 11),
                bin("a", "arrival", 30, 12),
                bin("a", "arrival", 45, 40),
            ],
            10,
        );
        let kept: Vec<i64> = kept.iter().map(|b| b.participants).collect();
        assert_eq!(kept, vec![12, 40], "3 + 11 hidden reach k; 12 and 40 stay");
        assert!(suppress(vec![bin("a", "arrival", 0, 10)], 10).len() == 1);
    }
}
