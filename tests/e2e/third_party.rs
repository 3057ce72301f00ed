//! A client nobody here wrote (Confluent's Python client with its Avro deserializer) reads our
//! raw topic through the schema registry and gets our records back.

use crate::common;

use std::process::Command;

use common::records::raw_snapshot;
use common::{Run, producer};
use muster_schemas::{RawSnapshot, SnapshotSource};

#[tokio::test]
async fn confluent_python_client_reads_raw_snapshots() {
    let (services, run, _, codec) = Run::begin().parts();
    let event_id = format!("third-party-{run}");
    let body = r#"{"participants":{"total":1200},"attendance":{"current":830}}"#;
    let snapshot = RawSnapshot {
        service_name: "third-party-test".into(),
        source: SnapshotSource::InitialSync,
        ..raw_snapshot(&event_id, 1_795_482_900_123, body.into())
    };
    let since = (chrono::Utc::now().timestamp_millis() - 60_000).to_string();
    let payload = codec.encode(&snapshot).await.unwrap();
    assert_eq!(payload[0], 0, "Confluent magic byte");
    common::kafka::send_bytes(
        &producer(&services),
        &common::topic::<RawSnapshot>(),
        &event_id,
        &payload,
    )
    .await;

    let python = std::env::var("MUSTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/third_party/read_topic.py"
    );
    // coreutils' timeout: a reader that hangs fails the attempt instead of the whole run. One
    // more attempt after a failure: a stalled broker or registry right after a heavy test file
    // is not what this test is about; the reader must then still find the record.
    let read = || {
        Command::new("timeout")
            .args(["120", &python])
            .args([
                script,
                "--brokers",
                &services.brokers,
                "--registry",
                &services.registry,
            ])
            .args([
                "--topic",
                &common::topic::<RawSnapshot>(),
                "--event-id",
                &event_id,
                "--since",
                &since,
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!("running {python}: {e} (scripts/test.sh installs the client)")
            })
    };
    let mut out = read();
    if !out.status.success() {
        eprintln!(
            "third-party reader failed once ({}), trying again:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out = read();
    }
    assert!(
        out.status.success(),
        "third-party reader failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["eventId"], event_id.as_str());
    assert_eq!(record["body"], body);
    assert_eq!(record["source"], "initial-sync");
    assert_eq!(record["httpStatus"], 200);
    assert_eq!(record["serviceName"], "third-party-test");
}
