//! `muster process new` and `muster process test` as a data engineer runs them: the real binary
//! on a folder processor, with every service address pointing nowhere (the commands need none).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{run_id, scratch_dir};

/// `muster process ARGS` with Kafka, the registry and PostgreSQL unreachable.
fn process(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_muster"))
        .arg("process")
        .args(args)
        .env("MUSTER_KAFKA_BROKERS", "127.0.0.1:9")
        .env("MUSTER_SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
        .env("MUSTER_DATABASE_URL", "postgres://muster@127.0.0.1:9/none")
        .output()
        .expect("running muster process")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let sql = std::fs::read_to_string(path).unwrap();
    assert!(sql.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, sql.replace(from, to)).unwrap();
}

#[test]
fn a_new_processor_is_tested_edited_and_updated_without_services() {
    let dir = scratch_dir(&run_id()).join("sql");
    let d = dir.to_str().unwrap();

    let out = process(&["new", "re_entries_10m", "--input", "checkins", "--dir", d]);
    assert!(out.status.success(), "{}", text(&out));
    let sql = dir.join("re_entries_10m.sql");
    assert!(sql.exists() && dir.join("golden/checkins.input.json").exists());
    assert!(text(&out).contains("re_entries_10m.expected.json"));

    let out = process(&["test", d]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok      re_entries_10m") && text(&out).contains("1 passed, 0 failed"),
        "{}",
        text(&out)
    );

    // Exits now count double: the diff names the rows and both values of the changed field.
    edit(
        &sql,
        "WHEN direction = 'out' THEN 1",
        "WHEN direction = 'out' THEN 2",
    );
    let out = process(&["test", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("FAIL    re_entries_10m"), "{report}");
    assert!(
        report.contains(
            "changed     eventId=e1 gateId=G1 windowStart=2026-11-24T01:00:00.000Z \
             windowEnd=2026-11-24T01:10:00.000Z\n                  exits: expected 1, got 2"
        ),
        "{report}"
    );
    assert!(!report.contains("entries: expected"), "{report}");
    assert!(report.contains("0 passed, 1 failed"), "{report}");

    let out = process(&["test", d, "--update"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("expected file rewritten"),
        "{}",
        text(&out)
    );
    let out = process(&["test", d]);
    assert!(out.status.success(), "{}", text(&out));

    // A query that no longer plans fails with the file and DataFusion's reason.
    edit(&sql, "FROM checkins", "FROM checkin");
    let out = process(&["test", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("re_entries_10m.sql: the query does not plan"),
        "{}",
        text(&out)
    );

    // The same name again, and a bad name, are refused.
    for (name, refusal) in [
        ("re_entries_10m", "already exists"),
        ("Re-entries", "not a processor name"),
    ] {
        let out = process(&["new", name, "--input", "normalized", "--dir", d]);
        assert!(!out.status.success());
        assert!(text(&out).contains(refusal), "{}", text(&out));
    }
}

#[test]
fn the_built_in_processors_pass_and_a_missing_golden_file_says_how_to_create_it() {
    let out = process(&["test"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok      gate_throughput_1m"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(" passed, 0 failed"), "{}", text(&out));

    let dir = scratch_dir(&run_id()).join("sql");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("peaks.sql"),
        "-- name: peaks\n-- input: normalized\n-- output: muster.windows.peaks.v1\n\
         SELECT event_id, max(current_attendees) AS peak FROM normalized GROUP BY event_id\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let out = process(&["test", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("golden/normalized.input.json is missing")
            && text(&out).contains("--update"),
        "{}",
        text(&out)
    );
    let out = process(&["test", d, "--update"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = process(&["test", d, "--only", "peaks"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = process(&["test", d, "--only", "nope"]);
    assert!(
        !out.status.success() && text(&out).contains("no SQL processor named \"nope\""),
        "{}",
        text(&out)
    );
}
