//! Property tests of the normalizers, the parsers of every upstream body: any text is either
//! normalized within what every stage downstream can store (see `storable`) or refused with an
//! error naming the schema and what was wrong; never a panic. Run longer with
//! `PROPTEST_CASES=100000 cargo test --workspace --lib fuzz`.

use muster_schemas::{RawSnapshot, SnapshotSource};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::storable::{EARLIEST, MAX_AHEAD_MS, MAX_COUNT, MAX_THROUGHPUT};
use super::*;

const FETCHED: i64 = 1_795_482_900_000;

fn raw(body: String) -> RawSnapshot {
    RawSnapshot {
        event_id: "e".into(),
        service_name: "s".into(),
        source: SnapshotSource::Poll,
        data_schema: "s-attend/v1".into(),
        fetched_at: FETCHED,
        http_status: 200,
        body,
        capacity: None,
    }
}

/// What a normalized snapshot guarantees, or what a refusal must say.
fn check(result: Result<Metrics, NormalizeError>) -> Result<(), TestCaseError> {
    match result {
        Ok(m) => {
            for c in [
                m.total_registered,
                m.current_attendees,
                m.checked_in,
                m.checked_out,
            ] {
                prop_assert!((0..=MAX_COUNT).contains(&c), "count {}", c);
            }
            if let Some(t) = m.timestamp {
                prop_assert!(
                    (EARLIEST..=FETCHED + MAX_AHEAD_MS).contains(&t),
                    "timestamp {}",
                    t
                );
            }
            for g in &m.gate_activity {
                prop_assert!(g.throughput.is_finite());
                prop_assert!((0.0..=MAX_THROUGHPUT).contains(&g.throughput));
                prop_assert!(!g.gate_id.contains('\0') && !g.status.contains('\0'));
            }
            for a in &m.alerts {
                prop_assert!(
                    ![&a.id, &a.severity, &a.message]
                        .iter()
                        .any(|t| t.contains('\0'))
                );
            }
            let rate = m.attendance_rate();
            prop_assert!(rate.is_finite() && rate >= 0.0, "rate {}", rate);
            prop_assert!(["degraded", "live", "idle"].contains(&m.status()));
        }
        Err(e @ NormalizeError::Invalid { .. }) => {
            let text = e.to_string();
            prop_assert!(
                text.starts_with("body is not valid s-attend/v1: "),
                "{}",
                text
            );
            prop_assert!(
                text.len() > "body is not valid s-attend/v1: ".len(),
                "{}",
                text
            );
        }
        Err(NormalizeError::Unstorable(field)) => {
            // Named by the field, e.g. `gates[0].throughput ...`.
            let named = [
                "timestamp",
                "participants.total",
                "attendance.",
                "gates[",
                "alerts[",
            ]
            .iter()
            .any(|f| field.starts_with(f));
            prop_assert!(named, "{}", field);
        }
        Err(other) => prop_assert!(false, "unexpected refusal {other}"),
    }
    Ok(())
}

/// A JSON value of any shape where a field is expected: the right type, the wrong type, huge and
/// negative numbers, NaN and infinity spelt as strings, unicode, long and NUL-bearing text, and
/// deep nesting.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            "NaN", "Infinity", "-inf", "1e999", "-0", "", "0x10", "\u{0}", "12",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "\\PC{0,4000}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A count as an upstream might send it: sound, negative, beyond `MAX_COUNT`, beyond `i64`, or
/// not a number.
fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0..=100_000i64).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(MAX_COUNT)),
        1 => Just(json!(MAX_COUNT + 1)),
        1 => Just(json!(u64::MAX)),
        1 => Just(serde_json::from_str::<Value>("1e30").expect("a number")),
        1 => Just(json!(12.5)),
        1 => any_value(),
    ]
}

/// A timestamp: RFC 3339 in any year and offset (far past and future included), or not one.
fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1..=9999i32, 1..=12u32, 1..=28u32, 0..24u32, -14..=14i32, any::<bool>()).prop_map(
            |(y, mo, d, h, off, z)| {
                let tz = if z { "Z".to_owned() } else { format!("{off:+03}:00") };
                Value::from(format!("{y:04}-{mo:02}-{d:02}T{h:02}:15:00{tz}"))
            }
        ),
        1 => Just(json!("2026-11-24T10:15:00.999999999+09:00")),
        1 => Just(json!("+275760-09-13T00:00:00Z")),
        1 => any_value(),
    ]
}

fn throughput() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0.0..1000.0f64).prop_map(Value::from),
        1 => Just(json!(MAX_THROUGHPUT)),
        1 => Just(json!(f64::MAX)),
        1 => Just(json!(-1.5)),
        1 => Just(json!("NaN")),
        1 => any_value(),
    ]
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[A-Za-z0-9 ]{0,8}".prop_map(Value::from),
        1 => prop::sample::select(vec!["open", "down", "OFFLINE", "critical", "Critical"]).prop_map(Value::from),
        1 => ".{0,8}\u{0}".prop_map(Value::from),
        1 => any_value(),
    ]
}

/// Sets `key` to `value` in `obj` sometimes, leaving it out otherwise (missing fields default).
fn maybe(obj: &mut serde_json::Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), v);
    }
}

fn gate() -> impl Strategy<Value = Value> {
    (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(throughput()),
    )
        .prop_map(|(id, status, throughput)| {
            let mut g = serde_json::Map::new();
            maybe(&mut g, "id", id);
            maybe(&mut g, "status", status);
            maybe(&mut g, "throughput", throughput);
            Value::Object(g)
        })
}

fn upstream_alert() -> impl Strategy<Value = Value> {
    (text(), prop::option::of(text()), prop::option::of(text())).prop_map(|(id, sev, msg)| {
        let mut a = serde_json::Map::new();
        a.insert("id".into(), id);
        maybe(&mut a, "severity", sev);
        maybe(&mut a, "message", msg);
        Value::Object(a)
    })
}

/// A body shaped like `s-attend/v1` with any field left out, mistyped or out of range.
fn s_attend_body() -> impl Strategy<Value = String> {
    (
        prop::option::of(count()),
        prop::option::of((count(), count(), count())),
        prop::option::of(prop::collection::vec(gate(), 0..5)),
        prop::option::of(prop::collection::vec(upstream_alert(), 0..3)),
        prop::option::of(timestamp()),
        prop::option::of((".{1,8}", any_value())),
    )
        .prop_map(|(total, attendance, gates, alerts, ts, extra)| {
            let mut b = serde_json::Map::new();
            if let Some(t) = total {
                b.insert("participants".into(), json!({ "total": t }));
            }
            if let Some((current, checked_in, checked_out)) = attendance {
                b.insert(
                    "attendance".into(),
                    json!({ "current": current, "checkedIn": checked_in, "checkedOut": checked_out }),
                );
            }
            maybe(&mut b, "gates", gates.map(Value::from));
            maybe(&mut b, "alerts", alerts.map(Value::from));
            maybe(&mut b, "timestamp", ts);
            if let Some((k, v)) = extra {
                b.insert(k, v);
            }
            Value::Object(b).to_string()
        })
}

proptest! {
    #[test]
    fn fuzz_any_text_is_normalized_or_refused(body in prop_oneof![
        ".{0,200}",
        any_value().prop_map(|v| v.to_string()),
    ]) {
        check(normalize(&registry(), &raw(body)))?;
    }

    #[test]
    fn fuzz_mutated_s_attend_bodies_keep_the_invariants(body in s_attend_body()) {
        check(normalize(&registry(), &raw(body)))?;
    }

    #[test]
    fn fuzz_sound_s_attend_bodies_are_normalized(
        total in 0..=MAX_COUNT, current in 0..=MAX_COUNT, throughput in 0.0..=MAX_THROUGHPUT,
        ahead in -(365 * MAX_AHEAD_MS)..=MAX_AHEAD_MS,
    ) {
        let at = chrono::DateTime::from_timestamp_millis(FETCHED + ahead).expect("in range");
        let body = json!({
            "participants": { "total": total },
            "attendance": { "current": current, "checkedIn": current, "checkedOut": 0 },
            "gates": [{ "id": "G1", "status": "open", "throughput": throughput }],
            "timestamp": at.to_rfc3339(),
        });
        let m = normalize(&registry(), &raw(body.to_string()));
        prop_assert!(m.is_ok(), "{:?}", m);
        check(m)?;
    }

    #[test]
    fn fuzz_deep_nesting_is_refused_not_a_stack_overflow(depth in 1usize..20_000, array in any::<bool>()) {
        let (open, close) = if array { ("[", "]") } else { ("{\"a\":", "}") };
        let body = format!("{{\"gates\":{}1{}}}", open.repeat(depth), close.repeat(depth));
        let e = normalize(&registry(), &raw(body));
        prop_assert!(matches!(e, Err(NormalizeError::Invalid { .. })), "{:?}", e);
    }
}
