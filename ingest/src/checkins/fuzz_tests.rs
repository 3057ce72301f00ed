//! Property tests of the check-in parser, the body of `POST /api/ingest/{eventId}/checkins`
//! (its signature is fuzzed with `muster_runtime::signature`): any bytes are parsed or refused
//! with a message saying what was wrong, and what is accepted is what may be published. Run
//! longer with `PROPTEST_CASES=100000 cargo test --workspace --lib fuzz`.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// Checks a parse: accepted check-ins are non-empty, NUL-free and at most `MAX_BATCH`; a refusal
/// is one of the parser's messages, naming the check-in at fault when the body was a list.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match parse(body) {
        Ok(checkins) => {
            prop_assert!((1..=MAX_BATCH).contains(&checkins.len()));
            for c in &checkins {
                for v in [&c.gate_id, &c.participant_id] {
                    prop_assert!(!v.is_empty() && !v.contains('\0'));
                }
            }
        }
        Err(e) => {
            let known = e.starts_with("body is not JSON: ")
                || e == "body must be a check-in object or an array of them"
                || e == "no check-ins in the body"
                || e.starts_with("at most ")
                || e.starts_with("check-in [");
            prop_assert!(known, "{}", e);
            if let Some(rest) = e.strip_prefix("check-in [") {
                let (index, why) = rest.split_once("]: ").expect("index then reason");
                prop_assert!(index.parse::<usize>().is_ok(), "{}", e);
                prop_assert!(!why.is_empty());
            }
        }
    }
    Ok(())
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[A-Za-z0-9-]{1,12}".prop_map(Value::from),
        1 => Just(json!("")),
        1 => "\\PC{0,3000}".prop_map(Value::from),
        1 => ".{0,4}\u{0}.{0,4}".prop_map(Value::from),
        1 => any_value(),
    ]
}

fn scanned_at() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1..=9999i32, 1..=12u32, 1..=28u32, -14..=14i32).prop_map(|(y, mo, d, off)| {
            Value::from(format!("{y:04}-{mo:02}-{d:02}T10:00:00{off:+03}:00"))
        }),
        1 => Just(json!("2026-11-24T10:00:00")),
        1 => Just(json!(1_795_482_900_000i64)),
        1 => any_value(),
    ]
}

/// A check-in object with any field missing, mistyped or odd, and sometimes an unknown field.
fn checkin() -> impl Strategy<Value = Value> {
    (
        prop::option::of(id()),
        prop::option::of(id()),
        prop::option::of(prop_oneof![
            4 => prop::sample::select(vec!["in", "out"]).prop_map(Value::from),
            1 => prop::sample::select(vec!["IN", "sideways", ""]).prop_map(Value::from),
            1 => any_value(),
        ]),
        prop::option::of(scanned_at()),
        prop::option::weighted(0.1, ("[a-z]{1,8}", any_value())),
    )
        .prop_map(|(gate, participant, direction, scanned, extra)| {
            let mut c = serde_json::Map::new();
            for (k, v) in [
                ("gateId", gate),
                ("participantId", participant),
                ("direction", direction),
                ("scannedAt", scanned),
            ] {
                if let Some(v) = v {
                    c.insert(k.into(), v);
                }
            }
            if let Some((k, v)) = extra {
                c.insert(k, v);
            }
            Value::Object(c)
        })
}

proptest! {
    #[test]
    fn fuzz_arbitrary_bytes_are_parsed_or_refused(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body)?;
    }

    #[test]
    fn fuzz_any_json_is_parsed_or_refused(v in any_value()) {
        check(v.to_string().as_bytes())?;
    }

    #[test]
    fn fuzz_mutated_checkins_are_parsed_or_refused_by_index(
        batch in prop::collection::vec(checkin(), 1..6), single in any::<bool>(),
    ) {
        let body = if single { batch[0].to_string() } else { Value::from(batch).to_string() };
        check(body.as_bytes())?;
    }

    #[test]
    fn fuzz_sound_checkins_are_accepted(
        n in 1usize..50, gate in "[A-Za-z0-9-]{1,12}", participant in "\\PC{1,40}",
        out in any::<bool>(), year in 2000..=2025i32,
    ) {
        let one = json!({
            "gateId": gate, "participantId": participant,
            "direction": if out { "out" } else { "in" },
            "scannedAt": format!("{year}-11-24T10:00:00+09:00"),
        });
        let body = Value::from(vec![one; n]).to_string();
        match parse(body.as_bytes()) {
            Ok(c) => prop_assert_eq!(c.len(), n),
            Err(e) => prop_assert!(false, "refused: {}", e),
        }
    }
}

#[test]
fn fuzz_scans_before_2000_or_a_day_ahead_are_refused() {
    let at = |t: &str| {
        format!(r#"{{"gateId":"G","participantId":"P","direction":"in","scannedAt":"{t}"}}"#)
    };
    let before = parse(at("1999-12-31T23:59:59Z").as_bytes()).err().unwrap();
    assert!(before.contains("before 2000"), "{before}");
    let ahead = (chrono::Utc::now() + chrono::TimeDelta::days(2)).to_rfc3339();
    let refused = parse(at(&ahead).as_bytes()).err().unwrap();
    assert!(refused.contains("a day ahead"), "{refused}");
    let soon = (chrono::Utc::now() + chrono::TimeDelta::hours(2)).to_rfc3339();
    assert!(
        parse(at(&soon).as_bytes()).is_ok(),
        "clock drift is no reason"
    );
    assert!(parse(at("2000-01-01T00:00:00Z").as_bytes()).is_ok());
}

#[test]
fn fuzz_one_past_the_batch_limit_is_refused() {
    let one =
        r#"{"gateId":"G","participantId":"P","direction":"in","scannedAt":"2026-11-24T10:00:00Z"}"#;
    let body = format!("[{}]", vec![one; MAX_BATCH + 1].join(","));
    assert_eq!(
        parse(body.as_bytes()).err(),
        Some(format!("at most {MAX_BATCH} check-ins per request"))
    );
    let body = format!("[{}]", vec![one; MAX_BATCH].join(","));
    assert_eq!(
        parse(body.as_bytes()).map(|c| c.len()).ok(),
        Some(MAX_BATCH)
    );
}
