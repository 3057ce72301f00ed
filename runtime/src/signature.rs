//! Standard Webhooks signatures (standardwebhooks.com): `webhook-signature: v1,<base64
//! HMAC-SHA256 of "{id}.{timestamp}.{body}">` with a `whsec_<base64>` secret. Used to verify the
//! check-ins services push to muster and to sign what muster pushes to partners.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature matches")]
    Mismatch,
    #[error("the secret is not whsec_<base64>")]
    BadSecret,
}

/// A new random secret, `whsec_` + base64 of 24 bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

fn key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    B64.decode(b64).map_err(|_| SignatureError::BadSecret)
}

fn mac(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<HmacSha256, SignatureError> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key(secret)?).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` header value for a message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
    let tag = mac(secret, id, timestamp, body)?.finalize().into_bytes();
    Ok(format!("v1,{}", B64.encode(tag)))
}

/// Checks a message against any of `secrets` (several during a rotation) and the timestamp
/// against `now` within `tolerance_secs`. Comparison is constant time.
pub fn verify(
    secrets: &[&str],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // Saturating: a timestamp near i64::MIN or i64::MAX is far outside, not an overflow.
    let skew = now.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance_secs.max(0).unsigned_abs() {
        return Err(SignatureError::OutsideTolerance(skew));
    }
    for candidate in signature_header.split_whitespace() {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(tag) = B64.decode(b64) else {
            continue;
        };
        for secret in secrets {
            if mac(secret, id, ts, body)?.verify_slice(&tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_reference_signature() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), EXPECTED);
    }

    #[test]
    fn verifies_within_tolerance_only() {
        assert_eq!(
            verify(&[SECRET], ID, "1614265330", EXPECTED, BODY, TS + 10, 300),
            Ok(())
        );
        assert_eq!(
            verify(&[SECRET], ID, "1614265330", EXPECTED, BODY, TS + 301, 300),
            Err(SignatureError::OutsideTolerance(301))
        );
        assert_eq!(
            verify(&[SECRET], ID, "soon", EXPECTED, BODY, TS, 300),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn refuses_tampering_and_accepts_any_listed_secret() {
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(&[SECRET], ID, "1614265330", EXPECTED, tampered, TS, 300),
            Err(SignatureError::Mismatch)
        );
        let other = generate_secret();
        let header = format!("v1,bm90IGl0 {EXPECTED}");
        assert_eq!(
            verify(&[&other, SECRET], ID, "1614265330", &header, BODY, TS, 300),
            Ok(())
        );
    }
}
