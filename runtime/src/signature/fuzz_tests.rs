//! Property tests of Standard Webhooks verification, the first parser a pushed check-in meets
//! (its headers): any header values are verified or refused with a [`SignatureError`], never a
//! panic; what is signed verifies, and any change to the body, id or time is refused. Run longer
//! with `PROPTEST_CASES=100000 cargo test --workspace --lib fuzz`.

use proptest::prelude::*;

use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_795_482_900;
const TOLERANCE: i64 = 300;

/// A `webhook-timestamp` as a sender might spell it: near now, any `i64` (the extremes
/// included), signs and spaces, or not a number at all.
fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        (-600..=600i64).prop_map(|d| (NOW + d).to_string()),
        any::<i64>().prop_map(|t| t.to_string()),
        Just(i64::MIN.to_string()),
        Just(i64::MAX.to_string()),
        Just(format!("+{NOW}")),
        Just(format!(" {NOW} ")),
        Just("99999999999999999999999".into()),
        ".{0,24}",
    ]
}

/// A `webhook-signature` header: well-formed, several, garbage base64, other versions, or text.
fn signature_header() -> impl Strategy<Value = String> {
    prop_oneof![
        "v1,[A-Za-z0-9+/=]{0,60}",
        "(v1,[A-Za-z0-9+/]{43}= ?){1,4}",
        "v[0-9a],.{0,50}",
        ".{0,120}",
    ]
}

proptest! {
    #[test]
    fn fuzz_any_headers_are_verified_or_refused(
        id in ".{0,40}", ts in timestamp(), sig in signature_header(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in prop_oneof![Just(NOW), any::<i64>()], tolerance in prop_oneof![Just(TOLERANCE), any::<i64>()],
        secret in prop_oneof![Just(SECRET.to_owned()), ".{0,40}"],
    ) {
        match verify(&[&secret], &id, &ts, &sig, &body, now, tolerance) {
            Ok(()) => prop_assert!(false, "random headers verified"),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn fuzz_what_is_signed_verifies_and_any_change_is_refused(
        id in "\\PC{1,40}", skew in -TOLERANCE..=TOLERANCE,
        body in prop::collection::vec(any::<u8>(), 0..512),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let ts = NOW + skew;
        let sig = sign(SECRET, &id, ts, &body).expect("a whsec_ secret");
        prop_assert_eq!(verify(&[SECRET], &id, &ts.to_string(), &sig, &body, NOW, TOLERANCE), Ok(()));
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.0.index(body.len())] ^= flip.1.max(1);
            prop_assert_eq!(
                verify(&[SECRET], &id, &ts.to_string(), &sig, &tampered, NOW, TOLERANCE),
                Err(SignatureError::Mismatch)
            );
        }
        let other_id = format!("{id}x");
        prop_assert_eq!(
            verify(&[SECRET], &other_id, &ts.to_string(), &sig, &body, NOW, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        // A replay of the same signature later is refused for its time, not verified.
        prop_assert_eq!(
            verify(&[SECRET], &id, &ts.to_string(), &sig, &body, ts + TOLERANCE + 1, TOLERANCE),
            Err(SignatureError::OutsideTolerance(TOLERANCE + 1))
        );
    }
}

/// The extremes `fuzz_any_headers_are_verified_or_refused` generates: `now - ts` overflowed (a
/// panic in debug builds; in release a wrapped skew, which for `ts = now + i64::MIN` came out
/// as `i64::MIN` and passed the tolerance) for a timestamp near `i64::MIN` or `i64::MAX`.
#[test]
fn fuzz_regression_extreme_timestamps_are_outside_the_tolerance() {
    for ts in [i64::MIN, i64::MIN + 1, NOW + i64::MIN, i64::MAX] {
        let e = verify(&[SECRET], "m", &ts.to_string(), "v1,x", b"", NOW, TOLERANCE);
        assert!(
            matches!(e, Err(SignatureError::OutsideTolerance(_))),
            "{ts}: {e:?}"
        );
    }
    let e = verify(&[SECRET], "m", "9", "v1,x", b"", i64::MIN, TOLERANCE);
    assert!(
        matches!(e, Err(SignatureError::OutsideTolerance(_))),
        "{e:?}"
    );
}
