//! The built-in golden files through [`run`] (what `muster process test` runs), the diff a
//! changed query prints, the skeleton, and oracles for the built-in queries independent of SQL.

use std::path::PathBuf;

use muster_schemas::RawCheckin;

use super::{Failure, Folder, Options, Verdict, create, run};
use crate::config::ProcessorsConfig;
use crate::sql::streams::{self, Stream};
use crate::sql::{SqlProcessor, load};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/golden")
}

/// The source tree's `processors/sql`, whose files are also compiled in.
fn source_folder() -> Folder {
    Folder::Dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql"))
}

async fn run_on_golden_input(p: &SqlProcessor) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(golden_dir().join(format!("{}.input.json", p.def.input.table())))
            .unwrap();
    let out = p
        .query(super::input_batch(p.def.input, &text).unwrap())
        .await
        .unwrap();
    p.rows_as_json(&out).unwrap()
}

fn by_name(name: &str) -> SqlProcessor {
    load(&ProcessorsConfig::default())
        .unwrap()
        .into_iter()
        .find(|p| p.def.name == name)
        .unwrap()
}

/// A fresh folder under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "muster-golden-{label}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cargo test` runs the golden files as `muster process test processors/sql` does;
/// `UPDATE_GOLDEN=1` rewrites them like `--update`.
#[tokio::test(flavor = "multi_thread")]
async fn every_sql_processor_matches_its_golden_file() {
    let opts = Options {
        update: std::env::var_os("UPDATE_GOLDEN").is_some(),
        only: vec![],
    };
    let report = run(&source_folder(), &opts).await.unwrap();
    assert!(report.outcomes.len() >= 3, "{report}");
    assert!(report.passed(), "{report}");
}

/// The binary's own copy (`muster process test` without a folder) is the source tree's.
#[tokio::test(flavor = "multi_thread")]
async fn the_compiled_in_processors_pass_too() {
    let report = run(&Folder::BuiltIn, &Options::default()).await.unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.outcomes.len(),
        run(&source_folder(), &Options::default())
            .await
            .unwrap()
            .outcomes
            .len()
    );
    let e = run(
        &Folder::BuiltIn,
        &Options {
            update: true,
            only: vec![],
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("processors/sql --update"), "{e}");
}

/// A copy of the built-in processors in a scratch folder, with one query changed.
fn changed_copy(scratch: &Scratch, name: &str, from: &str, to: &str) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    std::fs::create_dir_all(scratch.0.join("golden")).unwrap();
    for entry in std::fs::read_dir(src.join("golden")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            scratch.0.join("golden").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(src.join(format!("{name}.sql"))).unwrap();
    assert!(text.contains(from));
    std::fs::write(
        scratch.0.join(format!("{name}.sql")),
        text.replace(from, to),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_query_fails_with_the_changed_fields_of_each_row() {
    let scratch = Scratch::new("changed");
    // Exits now count as entries too.
    changed_copy(
        &scratch,
        "gate_throughput_1m",
        "WHEN direction = 'in' THEN 1",
        "WHEN direction IN ('in', 'out') THEN 1",
    );
    let folder = Folder::Dir(scratch.0.clone());
    let report = run(&folder, &Options::default()).await.unwrap();
    assert_eq!(report.failed(), 1, "{report}");
    let text = report.to_string();
    let Verdict::Failed(Failure::Differs(diff)) =
        &report.get("gate_throughput_1m").unwrap().verdict
    else {
        panic!("{text}");
    };
    assert!(
        diff.missing.is_empty() && diff.unexpected.is_empty(),
        "{text}"
    );
    // In the sample, gate G1's first minute of e1 has two entries and one exit.
    assert!(
        text.contains(
            "changed     eventId=e1 gateId=G1 windowStart=2026-11-24T01:00:00.000Z \
             windowEnd=2026-11-24T01:01:00.000Z\n                  entries: expected 2, got 3\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains("exits: expected"),
        "only entries changed: {text}"
    );
    assert!(text.ends_with("0 passed, 1 failed"), "{text}");

    // --update accepts the new output; then it passes.
    let updated = run(
        &folder,
        &Options {
            update: true,
            only: vec![],
        },
    )
    .await
    .unwrap();
    assert!(
        updated.to_string().contains("expected file rewritten"),
        "{updated}"
    );
    assert!(run(&folder, &Options::default()).await.unwrap().passed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_window_shows_missing_and_unexpected_rows() {
    let scratch = Scratch::new("window");
    changed_copy(
        &scratch,
        "attendance_curve_5m",
        "max(current_attendees) AS peak_attendees",
        "max(current_attendees) AS peak_attendees, 1 AS version",
    );
    // Its declared table needs a merge rule for the new column too.
    let file = scratch.0.join("attendance_curve_5m.sql");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("registered = max", "registered = max, version = last"),
    )
    .unwrap();
    changed_copy(
        &scratch,
        "gate_entries_15m_hop_5m",
        "FROM checkins WHERE direction = 'in'\n    UNION ALL\n    SELECT event_id, gate_id, date_bin(INTERVAL '5 minutes', scanned_at) - INTERVAL '10 minutes'\n    FROM checkins WHERE direction = 'in'\n",
        "FROM checkins WHERE direction = 'in'\n",
    );
    let report = run(&Folder::Dir(scratch.0.clone()), &Options::default())
        .await
        .unwrap();
    let text = report.to_string();
    assert!(
        text.contains("new columns (not in the expected rows): version"),
        "{text}"
    );
    let Verdict::Failed(Failure::Differs(hop)) =
        &report.get("gate_entries_15m_hop_5m").unwrap().verdict
    else {
        panic!("{text}");
    };
    assert!(!hop.missing.is_empty(), "{text}");
    assert!(
        text.contains("    missing     eventId=e1 gateId="),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_golden_files_say_how_to_create_them() {
    let scratch = Scratch::new("missing");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/gate_throughput_1m.sql");
    std::fs::copy(&src, scratch.0.join("gate_throughput_1m.sql")).unwrap();
    let folder = Folder::Dir(scratch.0.clone());
    let text = run(&folder, &Options::default()).await.unwrap().to_string();
    assert!(
        text.contains("golden/checkins.input.json is missing"),
        "{text}"
    );
    assert!(text.contains("--update"), "{text}");
    std::fs::create_dir_all(scratch.0.join("golden")).unwrap();
    std::fs::copy(
        golden_dir().join("checkins.input.json"),
        scratch.0.join("golden/checkins.input.json"),
    )
    .unwrap();
    let text = run(&folder, &Options::default()).await.unwrap().to_string();
    assert!(
        text.contains("golden/gate_throughput_1m.expected.json is missing: run with --update"),
        "{text}"
    );
    let text = run(
        &folder,
        &Options {
            update: true,
            only: vec![],
        },
    )
    .await
    .unwrap()
    .to_string();
    assert!(text.ends_with("1 updated, 0 failed"), "{text}");
    assert_eq!(
        std::fs::read_to_string(scratch.0.join("golden/gate_throughput_1m.expected.json")).unwrap(),
        std::fs::read_to_string(golden_dir().join("gate_throughput_1m.expected.json")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_skeleton_passes_at_once_and_bad_names_are_refused() {
    let scratch = Scratch::new("new");
    for stream in [Stream::Checkins, Stream::Normalized] {
        let name = format!("my_{}", stream.table());
        let created = create(&scratch.0, &name, stream).await.unwrap();
        assert!(created.rows > 0, "the example query has rows on the sample");
        assert!(created.input.is_some());
        let def =
            crate::sql::SqlDefinition::parse("t", &std::fs::read_to_string(&created.sql).unwrap())
                .unwrap();
        assert_eq!(
            (def.input, def.output),
            (stream, &*format!("muster.windows.my-{}.v1", stream.table()))
        );
        // Only the four metadata lines of the header hold a colon.
        let header_colons = std::fs::read_to_string(&created.sql)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("--"))
            .filter(|l| l.contains(':'))
            .count();
        assert_eq!(header_colons, 4);
    }
    let report = run(&Folder::Dir(scratch.0.clone()), &Options::default())
        .await
        .unwrap();
    assert!(report.passed() && report.outcomes.len() == 2, "{report}");
    // A second one on the same stream keeps the folder's input.
    assert!(
        create(&scratch.0, "second", Stream::Checkins)
            .await
            .unwrap()
            .input
            .is_none()
    );
    for (name, refusal) in [
        ("my_checkins", "already exists"),
        ("Gates", "not a processor name"),
        ("1x", "not a processor name"),
        ("re-entries", "not a processor name"),
        ("", "not a processor name"),
        ("gate_throughput_1m", "built-in processor"),
    ] {
        let e = create(&scratch.0, name, Stream::Checkins)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(refusal), "{name}: {e}");
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
    let got = run_on_golden_input(&by_name("gate_throughput_1m")).await;
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
    let got = run_on_golden_input(&by_name("gate_entries_15m_hop_5m")).await;
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
        let e = crate::sql::SqlDefinition::parse(file, text).unwrap_err();
        assert!(e.to_string().contains(refusal), "{e}");
    }
}

#[test]
fn the_diff_pairs_duplicate_keys_in_order_and_notices_a_new_order() {
    use super::RowDiff;
    use serde_json::json;
    let cols = ["gateId".to_owned(), "n".to_owned()];
    let a = json!({"gateId": "G1", "n": 1});
    let b = json!({"gateId": "G1", "n": 2});
    let c = json!({"gateId": "G2", "n": 3});
    let same = RowDiff::new(&cols, &[a.clone(), c.clone()], &[a.clone(), c.clone()]);
    assert!(same.is_empty());
    let reordered = RowDiff::new(&cols, &[a.clone(), c.clone()], &[c.clone(), a.clone()]);
    assert_eq!(reordered.reordered_at, Some(0));
    assert!(reordered.is_empty(), "another order is no failure");
    assert!(
        reordered
            .to_string()
            .contains("another order (first at row 1)")
    );
    // Two rows for G1 expected, one produced: the first pairs up, the second is missing.
    let d = RowDiff::new(&cols, &[a.clone(), b.clone(), c.clone()], &[a.clone(), c]);
    assert_eq!(
        (d.changed.len(), d.missing.len(), d.unexpected.len()),
        (0, 1, 0)
    );
    assert!(d.to_string().contains("missing     gateId=G1 n=2"), "{d}");
    let d = RowDiff::new(&cols, std::slice::from_ref(&a), &[a.clone(), b]);
    assert!(d.to_string().contains("unexpected  gateId=G1 n=2"), "{d}");
}
