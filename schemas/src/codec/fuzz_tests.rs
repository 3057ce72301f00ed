//! Property tests of the Confluent wire-format decode path, the parser every Kafka record meets:
//! arbitrary bytes never panic and are refused as a `Decode` error naming the topic, and every
//! record of every schema round-trips through the codec's own encode and decode. Run longer with
//! `PROPTEST_CASES=100000 cargo test --workspace --lib fuzz`.

use std::sync::{Arc, LazyLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::prelude::*;

use super::*;
use crate::records::*;

/// The schema id the test codec knows every topic's schema by, as if learnt from the registry.
const ID: u32 = 7;

/// A codec whose fast paths already know schema [`ID`] for `R`, so that encoding and decoding
/// never ask a registry (the URL below is never contacted).
fn codec_for<R: TopicRecord>(codec: &Codec) {
    let schema = leak_schema(R::SCHEMA).expect("built-in schema parses");
    let writer = GenericDatumWriter::builder(schema).build().expect("writer");
    let reader = GenericDatumReader::builder(schema).build().expect("reader");
    codec
        .fast
        .writers
        .write()
        .expect("poisoned")
        .insert(R::TOPIC, Arc::new((ID, writer)));
    codec
        .fast
        .readers
        .write()
        .expect("poisoned")
        .insert((ID, R::TOPIC), Some(Arc::new(reader)));
}

/// One codec and runtime for every case: building a codec sets up its registry clients (TLS
/// included), far dearer than a case.
static CODEC: LazyLock<(tokio::runtime::Runtime, Codec)> = LazyLock::new(|| {
    let codec = Codec::new("http://registry.invalid:1/").expect("codec");
    codec_for::<RawSnapshot>(&codec);
    codec_for::<NormalizedMetrics>(&codec);
    codec_for::<RawCheckin>(&codec);
    codec_for::<ServiceHealth>(&codec);
    codec_for::<DeadLetter>(&codec);
    codec_for::<Alert>(&codec);
    codec_for::<AlertState>(&codec);
    codec_for::<CatalogueEntry>(&codec);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    (rt, codec)
});

fn codec() -> &'static Codec {
    &CODEC.1
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    CODEC.0.block_on(f)
}

/// Any text, unicode and NUL included, sometimes long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,24}",
        1 => ".{0,2000}",
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ]
}

fn one_of<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn source() -> impl Strategy<Value = SourceOffset> {
    (text(), any::<i32>(), any::<i64>()).prop_map(|(topic, partition, offset)| SourceOffset {
        topic,
        partition,
        offset,
    })
}

prop_compose! {
    fn raw_snapshot()(event_id in text(), service_name in text(), source in one_of(SnapshotSource::ALL),
        data_schema in text(), fetched_at in any::<i64>(), http_status in any::<i32>(), body in text(),
        capacity in any::<Option<i64>>()) -> RawSnapshot {
        RawSnapshot { event_id, service_name, source, data_schema, fetched_at, http_status, body, capacity }
    }
}

prop_compose! {
    fn normalized()(event_id in text(), timestamp in any::<i64>(), fetched_at in any::<i64>(),
        counts in any::<[i64; 4]>(), attendance_rate in finite(),
        gate_activity in prop::collection::vec((text(), text(), finite()), 0..4),
        alerts in prop::collection::vec((text(), text(), text()), 0..4),
        status in text(), source in source(), capacity in any::<Option<i64>>()) -> NormalizedMetrics {
        NormalizedMetrics {
            event_id, timestamp, fetched_at,
            total_registered: counts[0], current_attendees: counts[1],
            checked_in: counts[2], checked_out: counts[3], attendance_rate,
            gate_activity: gate_activity.into_iter()
                .map(|(gate_id, status, throughput)| GateActivity { gate_id, status, throughput })
                .collect(),
            alerts: alerts.into_iter()
                .map(|(id, severity, message)| UpstreamAlert { id, severity, message })
                .collect(),
            status, source, capacity,
        }
    }
}

prop_compose! {
    fn checkin()(event_id in text(), gate_id in text(), participant in text(),
        direction in one_of(Direction::ALL), scanned_at in any::<i64>(), received_at in any::<i64>(),
        delivery_id in text()) -> RawCheckin {
        RawCheckin { event_id, gate_id, participant, direction, scanned_at, received_at, delivery_id }
    }
}

prop_compose! {
    fn health()(event_id in text(), service_name in text(), previous in prop::option::of(one_of(Health::ALL)),
        current in one_of(Health::ALL), reason in text(), latency_ms in any::<Option<i64>>(),
        consecutive_failures in any::<i32>(), at in any::<i64>()) -> ServiceHealth {
        ServiceHealth { event_id, service_name, previous, current, reason, latency_ms, consecutive_failures, at }
    }
}

prop_compose! {
    fn dead_letter()(event_id in prop::option::of(text()), stage in text(), error in text(),
        source in source(), payload in prop::collection::vec(any::<u8>(), 0..512),
        failed_at in any::<i64>()) -> DeadLetter {
        DeadLetter {
            event_id, stage, error, source_topic: source.topic, source_partition: source.partition,
            source_offset: source.offset, payload, failed_at,
        }
    }
}

prop_compose! {
    fn alert()(alert_id in text(), event_id in text(), kind in one_of(AlertKind::ALL),
        subject in prop::option::of(text()), action in one_of(AlertAction::ALL),
        severity in one_of(Severity::ALL), message in text(), raised_at in any::<i64>(),
        at in any::<i64>(), duration_ms in any::<Option<i64>>(), source in source()) -> Alert {
        Alert { alert_id, event_id, kind, subject, action, severity, message, raised_at, at, duration_ms, source }
    }
}

prop_compose! {
    fn alert_state()(event_id in text(),
        active in prop::collection::vec((text(), one_of(AlertKind::ALL), prop::option::of(text()),
            one_of(Severity::ALL), text(), any::<i64>()), 0..4),
        gate_baselines in prop::collection::vec((text(), finite()), 0..4),
        last_metrics_at in any::<Option<i64>>()) -> AlertState {
        AlertState {
            event_id,
            active: active.into_iter()
                .map(|(alert_id, kind, subject, severity, message, raised_at)| ActiveAlert {
                    alert_id, kind, subject, severity, message, raised_at,
                })
                .collect(),
            gate_baselines: gate_baselines.into_iter()
                .map(|(gate_id, throughput)| GateBaseline { gate_id, throughput })
                .collect(),
            last_metrics_at,
        }
    }
}

prop_compose! {
    fn catalogue()(event_id in text(), service_name in text(), name in text(), event_type in text(),
        venue in prop::option::of(text()), capacity in any::<Option<i64>>(),
        times in any::<(Option<i64>, Option<i64>, Option<i32>)>(),
        money in (prop::option::of(finite()), prop::option::of(finite()), prop::option::of(finite())),
        currency in prop::option::of(text()), removed in any::<bool>(), at in any::<i64>()) -> CatalogueEntry {
        CatalogueEntry {
            event_id, service_name, name, event_type, venue, capacity,
            starts_at: times.0, ends_at: times.1, utc_offset_minutes: times.2,
            ticket_price: money.0, cost_total: money.1, other_income: money.2,
            currency, removed, at,
        }
    }
}

/// Encodes with the codec, checks the wire header, decodes back, and decodes every truncation
/// and a mutation of the bytes without panicking.
fn roundtrip<R: TopicRecord + PartialEq + std::fmt::Debug>(
    record: R,
    flip: (prop::sample::Index, u8),
) -> Result<(), TestCaseError> {
    let codec = codec();
    let bytes = block_on(codec.encode(&record)).expect("encodes");
    prop_assert_eq!(&bytes[..5], &[0, 0, 0, 0, ID as u8][..]);
    let back: R = block_on(codec.decode(&bytes)).expect("decodes");
    prop_assert_eq!(back, record);
    for end in [0, 1, 4, 5, bytes.len() / 2, bytes.len() - 1] {
        let _ = block_on(codec.decode::<R>(&bytes[..end.min(bytes.len())]));
    }
    let mut mutated = bytes.clone();
    let at = 5 + flip.0.index(mutated.len() - 5);
    mutated[at] ^= flip.1.max(1);
    if let Err(e) = block_on(codec.decode::<R>(&mutated)) {
        let named = matches!(&e, CodecError::Decode { topic, .. } if *topic == R::TOPIC);
        prop_assert!(named, "{}", e);
    }
    Ok(())
}

/// The topic-record bytes a fuzzer would send: sometimes the known schema id, sometimes no
/// magic byte or too short to hold a header.
fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
    let body = prop::collection::vec(any::<u8>(), 0..256);
    prop_oneof![
        body.clone()
            .prop_map(|b| [&[0, 0, 0, 0, ID as u8][..], &b].concat()),
        prop::collection::vec(any::<u8>(), 0..5),
        (1..=255u8, body).prop_map(|(magic, b)| [&[magic][..], &b].concat()),
    ]
}

fn assert_refused_or_read<R: TopicRecord>(
    codec: &Codec,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    match block_on(codec.decode::<R>(bytes)) {
        Ok(_) => prop_assert!(bytes.len() > 5 && bytes[0] == 0),
        Err(CodecError::Decode {
            topic,
            reason,
            transient,
        }) => {
            prop_assert_eq!(topic, R::TOPIC);
            prop_assert!(!reason.is_empty());
            prop_assert!(
                !transient,
                "bytes alone are never a reason to retry: {reason}"
            );
        }
        Err(other) => prop_assert!(false, "not a decode error: {other}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn fuzz_arbitrary_bytes_are_refused_naming_the_topic(bytes in wire_bytes()) {
        let codec = codec();
        assert_refused_or_read::<RawSnapshot>(codec, &bytes)?;
        assert_refused_or_read::<NormalizedMetrics>(codec, &bytes)?;
        assert_refused_or_read::<RawCheckin>(codec, &bytes)?;
        assert_refused_or_read::<ServiceHealth>(codec, &bytes)?;
        assert_refused_or_read::<DeadLetter>(codec, &bytes)?;
        assert_refused_or_read::<Alert>(codec, &bytes)?;
        assert_refused_or_read::<AlertState>(codec, &bytes)?;
        assert_refused_or_read::<CatalogueEntry>(codec, &bytes)?;
    }

    #[test]
    fn fuzz_raw_snapshots_roundtrip(r in raw_snapshot(), flip in any::<(prop::sample::Index, u8)>()) {
        roundtrip(r, flip)?;
    }

    #[test]
    fn fuzz_normalized_roundtrip(r in normalized(), flip in any::<(prop::sample::Index, u8)>()) {
        roundtrip(r, flip)?;
    }

    #[test]
    fn fuzz_checkins_and_health_roundtrip(c in checkin(), h in health(),
        flip in any::<(prop::sample::Index, u8)>()) {
        roundtrip(c, flip)?;
        roundtrip(h, flip)?;
    }

    #[test]
    fn fuzz_dead_letters_and_catalogue_roundtrip(d in dead_letter(), c in catalogue(),
        flip in any::<(prop::sample::Index, u8)>()) {
        roundtrip(d, flip)?;
        roundtrip(c, flip)?;
    }

    #[test]
    fn fuzz_alerts_and_alert_state_roundtrip(a in alert(), s in alert_state(),
        flip in any::<(prop::sample::Index, u8)>()) {
        roundtrip(a, flip)?;
        roundtrip(s, flip)?;
    }
}

/// A 6-byte record claiming a 500 MB string is refused, not allocated and read past its end.
#[test]
fn fuzz_huge_length_prefixes_are_refused() {
    let codec = codec();
    // zigzag varint of 2^40: far past apache-avro's allocation cap.
    let mut bytes = vec![0, 0, 0, 0, ID as u8];
    bytes.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let e = block_on(codec.decode::<RawSnapshot>(&bytes)).unwrap_err();
    assert!(
        matches!(&e, CodecError::Decode { topic, .. } if *topic == RawSnapshot::TOPIC),
        "{e}"
    );
}
