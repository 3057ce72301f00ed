//! Cross-event insights on a generated year of history (three types in three time zones,
//! seeded into the projections, check-ins into the Parquet archive), computed by a real
//! `muster insights --once` and served by a real `muster api`. Every figure is checked against
//! a value this test works out on its own from the generated data: the patterns cell by cell,
//! behaviour bins with k-anonymity, forecasts with their Student's t interval, the backtest's
//! MAPE, ROI, and the recommendations' wording and evidence.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{
    DateTime, Datelike, Duration as Span, FixedOffset, NaiveTime, TimeZone, Timelike, Utc,
};
use common::api::{ADMIN, Auth, each, start_api};
use common::process::run_ok;
use common::{Run, db};
use muster_schemas::{Direction, RawCheckin};
use serde_json::{Value, json};
const K: i64 = 10;

#[derive(Debug, Clone)]
struct Ev {
    id: String,
    kind: String,
    offset_min: i32,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    registered: i64,
    checked_in: i64,
    capacity: Option<i64>,
    price: f64,
    cost: f64,
    other_income: Option<f64>,
    currency: &'static str,
    /// (hour bucket, mean rate, samples)
    hours: Vec<(DateTime<Utc>, f64, i64)>,
    peak_attendees: i64,
    /// (gate, minute, entries)
    gate_minutes: Vec<(String, DateTime<Utc>, i64)>,
    gates_open: Option<usize>,
}

/// A stable pseudo-random number in [0, 1) from a string and an index.
fn noise(s: &str, i: u64) -> f64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ i.wrapping_mul(0x9E3779B97F4A7C15);
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The UTC instant of `hour:minute` local time on the local date `days` from today.
fn local_at(now: DateTime<Utc>, offset_min: i32, days: i64, hour: u32) -> DateTime<Utc> {
    let tz = FixedOffset::east_opt(offset_min * 60).unwrap();
    let today = now.with_timezone(&tz).date_naive();
    let day = today + Span::days(days);
    tz.from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap()))
        .unwrap()
        .with_timezone(&Utc)
}

/// What the events of one type share: where and when they start, how many register, and
/// their prices.
struct Type {
    kind: String,
    offset_min: i32,
    /// The local hour the events start.
    hour: u32,
    registered: i64,
    price: f64,
    cost: f64,
    currency: &'static str,
}

impl Type {
    /// An event of this type starting on the local date `days` from today, of which
    /// `checked_in` came (if it has ended by `now`).
    fn event(&self, id: String, days: i64, checked_in: i64, now: DateTime<Utc>) -> Ev {
        let start = local_at(now, self.offset_min, days, self.hour);
        let end = start + Span::hours(8);
        let hours = if end <= now {
            (0..8)
                .map(|h| {
                    let rate = 0.2 + 0.6 * noise(&id, h);
                    (start + Span::hours(h as i64), rate, 12 + (h as i64 % 3))
                })
                .collect()
        } else {
            Vec::new()
        };
        Ev {
            peak_attendees: (checked_in as f64 * 0.9) as i64,
            id,
            kind: self.kind.clone(),
            offset_min: self.offset_min,
            start,
            end,
            registered: self.registered,
            checked_in: if end <= now { checked_in } else { 0 },
            capacity: None,
            price: self.price,
            cost: self.cost,
            other_income: None,
            currency: self.currency,
            hours,
            gate_minutes: Vec::new(),
            gates_open: None,
        }
    }
}

/// Peak minute `offset` from the start: `total` entries over five gates, the busiest `top`.
fn peak(ev: &mut Ev, offset_min: i64, total: i64, top: i64) {
    let at = ev.start + Span::minutes(offset_min);
    let rest = total - top;
    ev.gate_minutes.push(("g1".into(), at, top));
    for (i, g) in ["g2", "g3", "g4", "g5"].iter().enumerate() {
        let share = rest / 4 + i64::from((i as i64) < rest % 4);
        ev.gate_minutes.push(((*g).into(), at, share));
    }
    // A calmer minute half an hour later.
    let later = ev.start + Span::minutes(offset_min + 30);
    ev.gate_minutes.push(("g1".into(), later, 20));
    ev.gate_minutes.push(("g2".into(), later, 20));
}

struct History {
    events: Vec<Ev>,
    conf: String,
    fest: String,
    expo: String,
    next_conf: String,
    next_fest: String,
    next_expo: String,
    behaviour_events: [String; 2],
}

fn generate(run: &str, now: DateTime<Utc>) -> History {
    let (conf, fest, expo) = (
        format!("conf-{run}"),
        format!("fest-{run}"),
        format!("expo-{run}"),
    );
    let mut events = Vec::new();
    // Conferences in Tokyo (UTC+9), 09:00 local, every 14 days on one weekday, 500 registered;
    // two in the year before, for the trend.
    let conference = Type {
        kind: conf.clone(),
        offset_min: 540,
        hour: 9,
        registered: 500,
        price: 20_000.0,
        cost: 6_000_000.0,
        currency: "JPY",
    };
    for (n, i) in (0..16).chain([30, 31]).enumerate() {
        let came = (500.0 * (0.6 + 0.3 * noise("conf", n as u64))).round() as i64;
        events.push(conference.event(format!("{conf}-{i:02}"), -15 - 14 * i, came, now));
    }
    let next_conf = format!("{conf}-next");
    events.push(conference.event(next_conf.clone(), 13, 0, now));
    // Festivals in New York (UTC-5), 10:00 local, 1000 registered: four on Saturdays (the
    // upcoming one's nearest) and six on Wednesdays.
    let festival = Type {
        kind: fest.clone(),
        offset_min: -300,
        hour: 10,
        registered: 1000,
        price: 60.0,
        cost: 50_000.0,
        currency: "EUR",
    };
    let tz = FixedOffset::east_opt(-300 * 60).unwrap();
    let today = now.with_timezone(&tz).date_naive();
    let mut ahead = 3;
    while (today + Span::days(ahead)).weekday() != chrono::Weekday::Sat {
        ahead += 1;
    }
    let saturdays = [
        (2, 820, 180, 38, -15, 850),
        (4, 780, 184, 38, -15, 900),
        (6, 800, 176, 37, -20, 800),
        (8, 840, 188, 39, -10, 950),
    ];
    for (weeks, came, total, top, at, crowd) in saturdays {
        let mut e = festival.event(format!("{fest}-sat{weeks}"), ahead - 7 * weeks, came, now);
        peak(&mut e, at, total, top);
        e.peak_attendees = crowd;
        events.push(e);
    }
    for weeks in 1..=6 {
        let mut e = festival.event(
            format!("{fest}-wed{weeks}"),
            ahead - 3 - 7 * weeks,
            600,
            now,
        );
        peak(&mut e, 30, 100, 25);
        e.peak_attendees = 550;
        events.push(e);
    }
    let next_fest = format!("{fest}-next");
    let mut e = festival.event(next_fest.clone(), ahead, 0, now);
    e.capacity = Some(900);
    e.gates_open = Some(3);
    events.push(e);
    // Exhibitions in Paris (UTC+1), 10:00 local, every 21 days, half the registrations come.
    let exhibition = Type {
        kind: expo.clone(),
        offset_min: 60,
        hour: 10,
        registered: 2000,
        price: 15.0,
        cost: 40_000.0,
        currency: "EUR",
    };
    for (i, came) in [1000, 960, 1040, 1020, 980, 1000].into_iter().enumerate() {
        events.push(exhibition.event(format!("{expo}-{i}"), -10 - 21 * i as i64, came, now));
    }
    // One with sponsors: other income counts as revenue.
    let third_last = events.len() - 3;
    events[third_last].other_income = Some(5_000.0);
    let next_expo = format!("{expo}-next");
    events.push(exhibition.event(next_expo.clone(), 11, 0, now));
    History {
        events,
        behaviour_events: [format!("{expo}-0"), format!("{expo}-1")],
        conf,
        fest,
        expo,
        next_conf,
        next_fest,
        next_expo,
    }
}

async fn seed(db: &tokio_postgres::Client, h: &History, now: DateTime<Utc>) {
    for e in &h.events {
        db.execute(
            "INSERT INTO event_catalogue (event_id, service_name, name, event_type, venue, capacity,
                starts_at, ends_at, utc_offset_minutes, ticket_price, cost_total, currency, removed,
                version_at, other_income)
             VALUES ($1, $1, $1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, false, now(), $10)",
            &[&e.id, &e.kind, &e.capacity, &e.start, &e.end, &e.offset_min, &e.price, &e.cost, &e.currency, &e.other_income],
        )
        .await
        .unwrap();
        let gates: Vec<Value> = (0..e.gates_open.map_or(0, |n| n + 1))
            .map(|i| {
                json!({"gateId": format!("G{i}"),
                       "status": if Some(i) == e.gates_open { "closed" } else { "open" },
                       "throughput": 0.0})
            })
            .collect();
        let observed = e.end.min(now);
        db.execute(
            "INSERT INTO event_realtime (event_id, observed_at, fetched_at, total_registered,
                current_attendees, checked_in, checked_out, attendance_rate, gate_activity, alerts,
                status, source_partition, source_offset)
             VALUES ($1, $2, $2, $3, 0, $4, $4, 0, $5, '[]', 'ended', 0, 0)",
            &[
                &e.id,
                &observed,
                &e.registered,
                &e.checked_in,
                &Value::Array(gates),
            ],
        )
        .await
        .unwrap();
        for (bucket, rate, samples) in &e.hours {
            let attendees = (rate * e.registered as f64) as i64;
            db.execute(
                "INSERT INTO event_series_hour (event_id, bucket, samples, attendees_sum,
                    attendees_max, attendees_min, registered_max, rate_sum, last_at, last_attendees)
                 VALUES ($1, $2, $3::bigint, $4::bigint * $3::bigint, $5, $4, $6, $7, $2, $4)",
                &[
                    &e.id,
                    bucket,
                    samples,
                    &attendees,
                    &e.peak_attendees.max(attendees),
                    &e.registered,
                    &(rate * *samples as f64),
                ],
            )
            .await
            .unwrap();
        }
        for (gate, bucket, entries) in &e.gate_minutes {
            db.execute(
                "INSERT INTO gate_series_minute (event_id, gate_id, bucket, entries, exits)
                 VALUES ($1, $2, $3, $4, 0)",
                &[&e.id, gate, bucket, entries],
            )
            .await
            .unwrap();
        }
    }
}

// ---------------------------------------------------------------- check-ins and behaviour

/// (participant, [(direction, minutes from the start)]) of one event.
type Scans = Vec<(String, Vec<(Direction, i64)>)>;

fn checkins(event: &str) -> Scans {
    let mut out = Vec::new();
    let mut person = |n: usize, scans: Vec<(Direction, i64)>| {
        out.push((format!("{event}-p{n:03}"), scans));
    };
    use Direction::{In, Out};
    if event.ends_with("-0") {
        for n in 0..12 {
            person(n, vec![(In, -10), (Out, 40)]);
        }
        for n in 12..23 {
            person(n, vec![(In, 5), (Out, 155)]);
        }
        for n in 23..30 {
            person(n, vec![(In, 20), (Out, 50), (In, 60), (Out, 120)]);
        }
        for n in 30..36 {
            person(n, vec![(In, 50)]);
        }
        // Somebody nobody else resembles: very early, in and out five times.
        person(
            36,
            vec![
                (In, -200),
                (Out, -190),
                (In, -180),
                (Out, -170),
                (In, -160),
                (Out, -150),
                (In, -140),
                (Out, -130),
                (In, -120),
                (Out, 600),
            ],
        );
    } else {
        for n in 0..11 {
            person(n, vec![(In, 0), (Out, 300)]);
        }
    }
    out
}

/// The bins as this test defines them, independently of the SQL.
fn expected_bins(start: DateTime<Utc>, scans: &Scans) -> BTreeMap<(String, i64), i64> {
    let mut bins: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (_, s) in scans {
        let first_in = s
            .iter()
            .find(|(d, _)| *d == Direction::In)
            .map(|x| x.1)
            .unwrap();
        let entries = s.iter().filter(|(d, _)| *d == Direction::In).count() as i64;
        let mut dwell: Option<i64> = None;
        for w in s.windows(2) {
            if w[0].0 == Direction::In && w[1].0 == Direction::Out {
                *dwell.get_or_insert(0) += (w[1].1 - w[0].1) * 60;
            }
        }
        let _ = start;
        let arrival = ((first_in * 60) as f64 / 900.0).floor() as i64 * 15;
        *bins
            .entry(("arrival".into(), arrival.clamp(-120, 480)))
            .or_default() += 1;
        if let Some(d) = dwell {
            let b = match d {
                d if d < 900 => 0,
                d if d < 1800 => 15,
                d if d < 3600 => 30,
                d if d < 7200 => 60,
                d if d < 14400 => 120,
                _ => 240,
            };
            *bins.entry(("dwell".into(), b)).or_default() += 1;
        }
        *bins
            .entry(("reentries".into(), (entries - 1).min(3)))
            .or_default() += 1;
        let last = s.last().unwrap();
        if last.0 == Direction::Out {
            let b = ((last.1 * 60) as f64 / 3600.0).floor() as i64 * 60;
            *bins
                .entry(("dropoff".into(), b.clamp(-60, 720)))
                .or_default() += 1;
        }
    }
    // Under k goes; and while what went adds up to fewer than k, the next smallest goes too
    // (the measure's total minus the shown bins would reveal it).
    let mut shown = BTreeMap::new();
    for measure in ["arrival", "dwell", "reentries", "dropoff"] {
        let mut of: Vec<(i64, i64)> = bins
            .iter()
            .filter(|((m, _), _)| m == measure)
            .map(|((_, b), n)| (*n, *b))
            .collect();
        of.sort();
        let mut hidden = 0;
        for (n, b) in of {
            if n < K || (hidden > 0 && hidden < K) {
                hidden += n;
            } else {
                shown.insert((measure.to_owned(), b), n);
            }
        }
    }
    shown
}

fn write_archive(root: &std::path::Path, h: &History) {
    let mut rows = Vec::new();
    let mut offset = 0;
    for id in &h.behaviour_events {
        let ev = h.events.iter().find(|e| &e.id == id).unwrap();
        for (participant, scans) in checkins(id) {
            for (direction, minute) in scans {
                let at = (ev.start + Span::minutes(minute)).timestamp_millis();
                rows.push(muster_projections::archive::rows::Located {
                    partition: 0,
                    offset,
                    record: RawCheckin {
                        event_id: id.clone(),
                        gate_id: "g1".into(),
                        participant: participant.clone(),
                        direction,
                        scanned_at: at,
                        received_at: at + 500,
                        delivery_id: format!("d{offset}"),
                    },
                });
                offset += 1;
            }
        }
    }
    let mut normalized = Vec::new();
    for e in &h.events {
        for (bucket, rate, _) in &e.hours {
            // Three observations an hour whose mean is the hour's rate.
            for (minute, delta) in [(5, -0.01), (25, 0.0), (45, 0.01)] {
                let at = (*bucket + Span::minutes(minute)).timestamp_millis();
                normalized.push(muster_projections::archive::rows::Located {
                    partition: 0,
                    offset,
                    record: muster_schemas::NormalizedMetrics {
                        event_id: e.id.clone(),
                        timestamp: at,
                        fetched_at: at,
                        total_registered: e.registered,
                        current_attendees: ((rate + delta) * e.registered as f64) as i64,
                        checked_in: 0,
                        checked_out: 0,
                        attendance_rate: rate + delta,
                        gate_activity: vec![],
                        alerts: vec![],
                        status: "live".into(),
                        source: muster_schemas::SourceOffset {
                            topic: "muster.raw.snapshots.v1".into(),
                            partition: 0,
                            offset,
                        },
                        capacity: None,
                    },
                });
                offset += 1;
            }
        }
    }
    let files = muster_projections::archive::files::encode(rows)
        .unwrap()
        .into_iter()
        .chain(muster_projections::archive::files::encode(normalized).unwrap());
    for f in files {
        let path = root.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, f.bytes).unwrap();
    }
}

// ---------------------------------------------------------------- independent figures

fn sample_sd(xs: &[f64]) -> Option<f64> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let m = xs.iter().sum::<f64>() / n as f64;
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
}

/// Student's t quantile at 0.9 (an 80 % two-sided interval), from the tables.
fn t90(df: usize) -> f64 {
    [f64::NAN, 3.077_684, 1.885_618, 1.637_744][df]
}

/// The forecast's show-up interval from the neighbours' rates (n ≤ 4).
fn interval(rates: &[f64]) -> (f64, f64, f64) {
    let n = rates.len();
    let m = rates.iter().sum::<f64>() / n as f64;
    let half = t90(n - 1) * sample_sd(rates).unwrap() * (1.0 + 1.0 / n as f64).sqrt();
    (m, (m - half).clamp(0.0, 1.0), (m + half).clamp(0.0, 1.0))
}

#[derive(Debug, Default, PartialEq)]
struct Cell {
    sum: f64,
    rates: Vec<f64>,
    events: BTreeSet<String>,
}

fn close(a: &Value, b: f64, tol: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() <= tol)
}

/// The forecast `muster insights` stored for `event`.
async fn forecast(db: &tokio_postgres::Client, event: &str) -> Value {
    db.query_one(
        "SELECT detail FROM insight_forecasts WHERE event_id = $1",
        &[&event],
    )
    .await
    .unwrap()
    .get(0)
}

/// Whether `a` is `rate` of the next festival's 1000 registered, in whole people.
fn people(a: &Value, rate: f64) -> bool {
    close(a, (rate * 1000.0).round(), 0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_on_a_generated_year_equal_what_the_history_says() {
    let (s, run, dir, _) = Run::begin().parts();
    let now = Utc::now();
    let h = generate(&run, now);
    let db = db::connect(&s.database).await;
    run_ok(&["migrate"], &[]);
    seed(&db, &h, now).await;
    let archive = dir.join("archive");
    write_archive(&archive, &h);

    // One run of the job, as an operator starts it.
    let stdout = run_ok(
        &["insights", "--once"],
        &[
            ("MUSTER__INSIGHTS__FORECAST__NEIGHBOURS", "4".to_owned()),
            (
                "MUSTER__PROJECTIONS__ARCHIVE__URL",
                format!("file://{}", archive.display()),
            ),
        ],
    );
    assert!(stdout.contains("forecast backtest: MAPE"), "{stdout}");
    let types = vec![h.conf.clone(), h.fest.clone(), h.expo.clone()];

    // ---- Patterns: type × local weekday × local hour, this year and the one before.
    let mut cells: BTreeMap<(String, &str, i32, i32), Cell> = BTreeMap::new();
    for e in &h.events {
        let tz = FixedOffset::east_opt(e.offset_min * 60).unwrap();
        for (bucket, rate, _) in &e.hours {
            let local = bucket.with_timezone(&tz);
            let period = if *bucket >= now - Span::days(365) {
                "current"
            } else {
                "previous"
            };
            let c = cells
                .entry((
                    e.kind.clone(),
                    period,
                    local.weekday().num_days_from_sunday() as i32,
                    local.hour() as i32,
                ))
                .or_default();
            c.sum += rate;
            c.rates.push(*rate);
            c.events.insert(e.id.clone());
        }
    }
    let rows = db
        .query(
            "SELECT event_type, day_of_week, hour_of_day, average_attendance_rate,
                    stddev_attendance_rate, samples, events, previous_average_attendance_rate,
                    previous_samples, change
             FROM insight_patterns WHERE event_type = ANY($1)",
            &[&types],
        )
        .await
        .unwrap();
    let current: Vec<_> = cells.iter().filter(|(k, _)| k.1 == "current").collect();
    assert_eq!(rows.len(), current.len(), "one row per cell of the year");
    assert!(current.len() > 20, "the history spans many cells");
    let mut with_trend = 0;
    for ((kind, _, dow, hour), c) in &current {
        let r = rows
            .iter()
            .find(|r| {
                r.get::<_, String>(0) == *kind
                    && r.get::<_, i32>(1) == *dow
                    && r.get::<_, i32>(2) == *hour
            })
            .unwrap_or_else(|| panic!("no row for {kind} {dow} {hour}"));
        let avg = c.sum / c.rates.len() as f64;
        assert!(
            (r.get::<_, f64>(3) - avg).abs() < 1e-9,
            "{kind} {dow} {hour}"
        );
        match (sample_sd(&c.rates), r.get::<_, Option<f64>>(4)) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9),
            (None, None) => {}
            other => panic!("stddev of {kind} {dow} {hour}: {other:?}"),
        }
        assert_eq!(r.get::<_, i64>(5), c.rates.len() as i64);
        assert_eq!(r.get::<_, i64>(6), c.events.len() as i64);
        let prev = cells.get(&(kind.clone(), "previous", *dow, *hour));
        match prev {
            Some(p) => {
                with_trend += 1;
                let pavg = p.sum / p.rates.len() as f64;
                assert!((r.get::<_, f64>(7) - pavg).abs() < 1e-9);
                assert_eq!(r.get::<_, i64>(8), p.rates.len() as i64);
                assert!((r.get::<_, f64>(9) - (avg - pavg)).abs() < 1e-9);
            }
            None => assert_eq!(r.get::<_, Option<f64>>(7), None),
        }
    }
    assert!(
        with_trend >= 8,
        "conferences have last year's cells to compare with"
    );
    // Local time, not UTC: Tokyo's 09:00 starts are hour 9 on the event's own weekday.
    assert!(
        rows.iter()
            .any(|r| r.get::<_, String>(0) == h.conf && r.get::<_, i32>(2) == 9)
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.get::<_, String>(0) == h.conf && r.get::<_, i32>(2) == 0)
    );

    // ---- The archive gives the same patterns as the hour series.
    let pool = muster_runtime::DatabaseConfig {
        url: s.database.clone(),
        ..Default::default()
    }
    .pool()
    .unwrap();
    let ctx = muster_analytics::context(&pool, Some(&format!("file://{}", archive.display())))
        .await
        .unwrap();
    use muster_analytics::insights::patterns::{Source, compute};
    let mine = |p: Vec<muster_analytics::insights::patterns::Pattern>| -> Vec<_> {
        p.into_iter()
            .filter(|p| types.contains(&p.event_type))
            .collect()
    };
    let from = now - Span::days(365);
    let hourly = mine(compute(&ctx, Source::Projections, from, now).await.unwrap());
    let archived = mine(compute(&ctx, Source::Archive, from, now).await.unwrap());
    assert_eq!(hourly.len(), current.len());
    assert_eq!(
        archived.len(),
        hourly.len(),
        "the same cells from either source"
    );
    for (a, b) in archived.iter().zip(&hourly) {
        assert_eq!(
            (&a.event_type, a.day_of_week, a.hour_of_day),
            (&b.event_type, b.day_of_week, b.hour_of_day)
        );
        assert!((a.average_attendance_rate - b.average_attendance_rate).abs() < 1e-9);
        assert_eq!(
            (a.samples, a.events, a.previous_samples),
            (b.samples, b.events, b.previous_samples)
        );
    }

    // ---- Behaviour: exactly the bins of at least K people, nothing about the loner.
    let bins = db
        .query(
            "SELECT scope, subject, measure, bucket, participants FROM insight_behaviour
             WHERE subject = ANY($1)",
            &[&vec![
                h.behaviour_events[0].clone(),
                h.behaviour_events[1].clone(),
                h.expo.clone(),
            ]],
        )
        .await
        .unwrap();
    assert!(!bins.is_empty());
    assert!(
        bins.iter().all(|b| b.get::<_, i64>(4) >= K),
        "every bin has at least k people"
    );
    let mut by_type: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for id in &h.behaviour_events {
        let ev = h.events.iter().find(|e| &e.id == id).unwrap();
        let want = expected_bins(ev.start, &checkins(id));
        let got: BTreeMap<(String, i64), i64> = bins
            .iter()
            .filter(|b| b.get::<_, String>(0) == "event" && b.get::<_, String>(1) == *id)
            .map(|b| ((b.get(2), b.get(3)), b.get(4)))
            .collect();
        assert_eq!(got, want, "bins of {id}");
        for (k, n) in want {
            *by_type.entry(k).or_default() += n;
        }
    }
    let got_type: BTreeMap<(String, i64), i64> = bins
        .iter()
        .filter(|b| b.get::<_, String>(0) == "eventType")
        .map(|b| ((b.get(2), b.get(3)), b.get(4)))
        .collect();
    assert_eq!(
        got_type, by_type,
        "a type's bins sum its events' shown bins only"
    );
    // The loner (3+ re-entries, arriving 3 h early) is in no bin of any scope; the seven who
    // came back once (under k) neither.
    assert!(
        !bins
            .iter()
            .any(|b| b.get::<_, String>(2) == "reentries" && b.get::<_, i64>(3) >= 1)
    );
    assert!(
        !bins
            .iter()
            .any(|b| b.get::<_, String>(2) == "arrival" && b.get::<_, i64>(3) == -120)
    );
    // The second event has 11 people: shown; with k = 12 it would vanish.
    assert!(
        bins.iter()
            .any(|b| b.get::<_, String>(1) == h.behaviour_events[1])
    );

    // ---- Forecast of the Saturday festival from the four Saturday festivals.
    let detail = forecast(&db, &h.next_fest).await;
    let (m, lo, hi) = interval(&[0.82, 0.78, 0.80, 0.84]);
    assert!(
        close(&detail["showUpRate"]["expected"], m, 1e-9),
        "{detail}"
    );
    assert!(close(&detail["showUpRate"]["low"], lo, 1e-6), "{detail}");
    assert!(close(&detail["showUpRate"]["high"], hi, 1e-6), "{detail}");
    assert!(people(&detail["finalAttendance"]["expected"], m));
    assert!(people(&detail["finalAttendance"]["low"], lo));
    let sim: BTreeSet<String> = detail["similarEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let sats: BTreeSet<String> = [2, 4, 6, 8]
        .iter()
        .map(|w| format!("{}-sat{w}", h.fest))
        .collect();
    assert_eq!(sim, sats, "the four Saturday festivals are the nearest");
    assert!(
        close(&detail["peakEntriesPerMinute"], 182.0, 1e-9),
        "{detail}"
    );
    assert!(close(&detail["gateEntriesPerMinute"], 38.0, 1e-9));
    assert_eq!(detail["gatesNeeded"], 5, "ceil(182 / 38)");
    assert_eq!(detail["gatesOpen"], 3);
    let next_fest = h.events.iter().find(|e| e.id == h.next_fest).unwrap();
    let peak_at: DateTime<Utc> = detail["peakAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        peak_at,
        next_fest.start - Span::minutes(15),
        "the median peak, 15 min before"
    );
    let (cm, _, chi) = interval(&[0.85, 0.90, 0.80, 0.95]);
    assert!(people(&detail["peakAttendees"]["expected"], cm));
    assert!(people(&detail["peakAttendees"]["high"], chi));
    let risks = detail["risks"].as_array().unwrap();
    assert_eq!(risks.len(), 1, "{detail}");
    assert_eq!(risks[0]["kind"], "capacity-overflow");
    assert_eq!(
        risks[0]["likelihood"], "possible",
        "875 expected, up to {chi} × 1000 > 900"
    );

    // ---- Recommendations, worded with their evidence.
    let recs: Vec<(String, String, Value)> = db
        .query(
            "SELECT kind, message, evidence FROM insight_recommendations WHERE event_id = $1",
            &[&h.next_fest],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let gates = recs
        .iter()
        .find(|r| r.0 == "open-gates")
        .expect("open-gates");
    assert_eq!(
        gates.1,
        format!(
            "Open 2 more gates before 09:30: expect a peak of 182 entries/min; the 4 most similar past {}s took 38 entries/min/gate at theirs",
            h.fest
        )
    );
    assert_eq!(gates.2["gatesNeeded"], 5);
    assert!(recs.iter().any(|r| r.0 == "capacity"));
    let staffing = recs
        .iter()
        .find(|r| r.0 == "peak-staffing")
        .expect("peak-staffing");
    assert_eq!(
        staffing.2["dayOfWeek"], 6,
        "Saturday, the event's local weekday"
    );

    // ---- Under-attendance of the exhibition: half of those registered come.
    let expo = forecast(&db, &h.next_expo).await;
    // The four latest of the six: 1000, 960, 1040, 1020 of 2000.
    assert!(
        close(&expo["showUpRate"]["expected"], 4020.0 / 4.0 / 2000.0, 1e-9),
        "{expo}"
    );
    assert_eq!(expo["risks"][0]["kind"], "under-attendance");
    assert_eq!(expo["risks"][0]["likelihood"], "likely");

    // ---- Backtest of the conferences: each forecast from the 4 latest before it, on its own.
    let mut confs: Vec<&Ev> = h
        .events
        .iter()
        .filter(|e| e.kind == h.conf && e.end <= now)
        .collect();
    confs.sort_by_key(|e| e.start);
    let (mut apes, mut inside) = (Vec::new(), 0);
    for (i, e) in confs.iter().enumerate() {
        let before: Vec<f64> = confs[..i]
            .iter()
            .rev()
            .take(4)
            .map(|p| p.checked_in as f64 / 500.0)
            .collect();
        if before.len() < 3 {
            continue;
        }
        let (m, lo, hi) = interval(&before);
        let actual = e.checked_in as f64;
        apes.push(((m * 500.0).round() - actual).abs() / actual);
        if (lo * 500.0).round() <= actual && actual <= (hi * 500.0).round() {
            inside += 1;
        }
    }
    let mape = 100.0 * apes.iter().sum::<f64>() / apes.len() as f64;
    let conf = forecast(&db, &h.next_conf).await;
    assert_eq!(conf["backtest"]["events"], apes.len(), "{conf}");
    assert!(
        close(&conf["backtest"]["mape"], mape, 1e-9),
        "{conf} vs {mape}"
    );
    assert!(close(
        &conf["backtest"]["intervalCoverage"],
        inside as f64 / apes.len() as f64,
        1e-9
    ));

    // ---- ROI per event and per type (one currency each).
    let roi = db
        .query(
            "SELECT scope, subject, currency, events, revenue, cost, profit, roi, cost_per_attendee
             FROM insight_roi WHERE event_type = ANY($1)",
            &[&types],
        )
        .await
        .unwrap();
    let past = h
        .events
        .iter()
        .find(|e| e.id == format!("{}-3", h.expo))
        .unwrap();
    let r = roi
        .iter()
        .find(|r| r.get::<_, String>(1) == past.id)
        .unwrap();
    assert_eq!(past.other_income, Some(5_000.0));
    assert_eq!(r.get::<_, f64>(4), 15.0 * 2000.0 + 5_000.0);
    assert_eq!(r.get::<_, f64>(6), 35_000.0 - 40_000.0);
    assert!((r.get::<_, f64>(8) - 40_000.0 / past.checked_in as f64).abs() < 1e-9);
    for kind in &types {
        let evs: Vec<&Ev> = h.events.iter().filter(|e| &e.kind == kind).collect();
        let revenue: f64 = evs
            .iter()
            .map(|e| e.price * e.registered as f64 + e.other_income.unwrap_or(0.0))
            .sum();
        let cost: f64 = evs.iter().map(|e| e.cost).sum();
        let t = roi
            .iter()
            .find(|r| r.get::<_, String>(0) == "eventType" && r.get::<_, String>(1) == *kind)
            .unwrap();
        assert_eq!(t.get::<_, i64>(3), evs.len() as i64);
        assert!((t.get::<_, f64>(4) - revenue).abs() < 1e-6);
        assert!((t.get::<_, f64>(5) - cost).abs() < 1e-6);
        assert!((t.get::<_, f64>(7) - (revenue - cost) / cost).abs() < 1e-9);
    }

    // ---- The API serves them, within each partner's grants.
    let (_api, api) = start_api::<&str>(&dir, &[]).await;
    let key = api
        .partner_key("premium", &[&h.next_fest, &h.behaviour_events[0]])
        .await;
    let get = |path: String, auth: Option<&str>| {
        let (api, auth) = (&api, auth.map(str::to_owned));
        async move {
            let auth = match auth.as_deref() {
                Some(ADMIN) => Auth::Bearer(ADMIN),
                Some(k) => Auth::Key(k),
                None => Auth::None,
            };
            api.get(auth, &path).await
        }
    };
    let (status, f) = get(
        format!("/api/premium/events/{}/forecast", h.next_fest),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{f}");
    // What the table holds, less the similar events' ids (they may be other partners').
    let mut redacted = detail.clone();
    redacted["similarEvents"] = json!([]);
    assert_eq!(
        f["forecast"], redacted,
        "the API answers what the table holds"
    );
    assert_eq!(f["forecast"]["similarEventCount"], 4);
    assert!(
        !f.to_string().contains(&format!("{}-sat", h.fest)),
        "no other event's id: {f}"
    );
    assert!(
        f["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "open-gates")
    );
    assert_eq!(
        get(
            format!("/api/premium/events/{}/forecast", h.next_expo),
            Some(&key)
        )
        .await
        .0,
        403
    );
    let (status, b) = get(
        format!("/api/premium/events/{}/behaviour", h.behaviour_events[0]),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["kAnonymity"], K);
    assert!(
        b["bins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["participants"].as_i64().unwrap() >= K)
    );
    assert_eq!(
        get(
            format!("/api/premium/events/{}/behaviour", h.behaviour_events[1]),
            Some(&key)
        )
        .await
        .0,
        403
    );
    let (status, roi) = get("/api/premium/analytics/roi".into(), Some(&key)).await;
    assert_eq!(status, 200, "{roi}");
    let ids = BTreeSet::from_iter(each(&roi["events"], "subject"));
    assert_eq!(
        ids,
        BTreeSet::from([h.next_fest.as_str(), h.behaviour_events[0].as_str()])
    );
    let (status, p) = get(
        format!("/api/premium/analytics/patterns?eventType={}", h.conf),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    let cells = p["patterns"].as_array().unwrap();
    assert!(
        !cells.is_empty() && cells.iter().all(|c| c["events"].as_i64().unwrap() >= 3),
        "{p}"
    );
    // Per-event insights and the dashboard carry the forecast and its recommendations.
    let (status, ins) = get(format!("/api/events/{}/insights", h.next_fest), Some(ADMIN)).await;
    assert_eq!(status, 200, "{ins}");
    assert_eq!(ins["insights"]["forecasts"][0], detail);
    assert!(
        ins["insights"]["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "open-gates")
    );
    let (status, dash) = get("/api/dashboard".into(), Some(&key)).await;
    assert_eq!(status, 200, "{dash}");
    let shown = each(&dash["insights"]["forecasts"], "eventId");
    assert_eq!(
        shown,
        vec![h.next_fest.as_str()],
        "only the partner's events' forecasts"
    );
    assert!(
        !dash.to_string().contains(&format!("{}-sat", h.fest)),
        "no other event's id"
    );
}
