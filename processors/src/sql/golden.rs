//! Golden files pin every SQL processor's output: `processors/sql/golden/<stream>.input.json`
//! goes in, `<name>.expected.json` must come out. `UPDATE_GOLDEN=1 cargo test` rewrites them;
//! review the diff like code.

use std::path::PathBuf;

use muster_schemas::{NormalizedMetrics, RawCheckin};

use super::streams::{self, Stream};
use super::{SqlProcessor, load};
use crate::config::ProcessorsConfig;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/golden")
}

fn input_batch(stream: Stream) -> datafusion::arrow::record_batch::RecordBatch {
    let path = golden_dir().join(format!("{}.input.json", stream.table()));
    let text = std::fs::read_to_string(&path).unwrap();
    match stream {
        Stream::Checkins => {
            let rows: Vec<RawCheckin> = serde_json::from_str(&text).unwrap();
            streams::checkins_batch(&rows).unwrap()
        }
        Stream::Normalized => {
            let rows: Vec<NormalizedMetrics> = serde_json::from_str(&text).unwrap();
            streams::normalized_batch(&rows).unwrap()
        }
    }
}

async fn run(p: &SqlProcessor) -> Vec<serde_json::Value> {
    let out = p.query(input_batch(p.def.input)).await.unwrap();
    p.rows_as_json(&out).unwrap()
}

fn processors() -> Vec<SqlProcessor> {
    load(&ProcessorsConfig::default()).unwrap()
}

fn by_name(name: &str) -> SqlProcessor {
    processors()
        .into_iter()
        .find(|p| p.def.name == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sql_processor_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let all = processors();
    assert!(all.len() >= 3, "built-in SQL processors are embedded");
    for p in &all {
        let got = run(p).await;
        let path = golden_dir().join(format!("{}.expected.json", p.def.name));
        if update {
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!("{} missing: run UPDATE_GOLDEN=1 cargo test", path.display())
            }))
            .unwrap();
        assert_eq!(
            serde_json::Value::Array(got),
            expected,
            "{} differs from its golden file",
            p.def.name
        );
        // The derived Avro schema parses.
        apache_avro::Schema::parse_str(p.avro_schema()).unwrap();
    }
}

/// An oracle independent of SQL: counts per (event, gate, minute) computed by hand.
#[tokio::test(flavor = "multi_thread")]
async fn tumbling_gate_counts_equal_a_hand_count() {
    let text = std::fs::read_to_string(golden_dir().join("checkins.input.json")).unwrap();
    let rows: Vec<RawCheckin> = serde_json::from_str(&text).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for r in &rows {
        let minute = r.scanned_at.div_euclid(60_000) * 60_000;
        let e = expected
            .entry((r.event_id.clone(), r.gate_id.clone(), minute))
            .or_insert((0, 0));
        match r.direction.as_str() {
            "in" => e.0 += 1,
            _ => e.1 += 1,
        }
    }
    let got = run(&by_name("gate_throughput_1m")).await;
    assert_eq!(got.len(), expected.len());
    for (row, ((event, gate, minute), (ins, outs))) in got.iter().zip(&expected) {
        let start =
            chrono::DateTime::parse_from_rfc3339(row["windowStart"].as_str().unwrap()).unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(row["windowEnd"].as_str().unwrap()).unwrap();
        assert_eq!(
            (
                row["eventId"].as_str().unwrap(),
                row["gateId"].as_str().unwrap()
            ),
            (event.as_str(), gate.as_str())
        );
        assert_eq!(start.timestamp_millis(), *minute);
        assert_eq!(end.timestamp_millis() - start.timestamp_millis(), 60_000);
        assert_eq!(
            (
                row["entries"].as_i64().unwrap(),
                row["exits"].as_i64().unwrap()
            ),
            (*ins, *outs)
        );
    }
}

/// Each entry counts in the three 15-minute windows that cover it.
#[tokio::test(flavor = "multi_thread")]
async fn hopping_windows_count_each_entry_three_times() {
    let got = run(&by_name("gate_entries_15m_hop_5m")).await;
    let total: i64 = got.iter().map(|r| r["entries"].as_i64().unwrap()).sum();
    let text = std::fs::read_to_string(golden_dir().join("checkins.input.json")).unwrap();
    let rows: Vec<RawCheckin> = serde_json::from_str(&text).unwrap();
    let entries = rows.iter().filter(|r| r.direction.as_str() == "in").count() as i64;
    assert_eq!(total, 3 * entries);
}

#[test]
fn implausible_times_are_refused_and_lateness_is_judged_against_arrival_time() {
    let now = 1_764_547_200_000;
    assert_eq!(streams::implausible_time(now, now + 5), None);
    let reason = streams::implausible_time(-3_250_000_000_000_000, -3_250_000_000_000_000);
    assert!(reason.unwrap().contains("implausible event time"));
    assert!(
        streams::implausible_time(now, i64::MAX)
            .unwrap()
            .contains("arrival")
    );
    assert_eq!(streams::too_late(1_000, 61_000, 60_000), None);
    let reason = streams::too_late(1_000, 61_001, 60_000).unwrap();
    assert!(reason.contains("60.0 s after"), "{reason}");
}

#[test]
fn bad_definitions_are_refused_with_the_file_named() {
    for (file, text, refusal) in [
        ("x.sql", "-- name: a\nSELECT 1", "x.sql: missing `-- input"),
        (
            "y.sql",
            "-- name: a\n-- input: checkins\n-- output: t\nSELECT 1",
            "version suffix",
        ),
        (
            "z.sql",
            "-- name: a\n-- input: nope\n-- output: t.v1\nSELECT 1",
            "unknown input stream",
        ),
    ] {
        let e = super::SqlDefinition::parse(file, text).unwrap_err();
        assert!(e.to_string().contains(refusal), "{e}");
    }
}
