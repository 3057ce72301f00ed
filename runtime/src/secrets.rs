//! The platform secret and what is derived from it: the key that encrypts credentials at rest
//! and the key that pseudonymizes participant ids. One secret to manage, independent keys.

use aes_gcm::aead::{Aead, AeadCore, KeyInit as _, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A configured secret (a token, a key). `Debug` and `Serialize` write `***`, so neither a log
/// line nor `muster config` can show it; code that needs the value calls [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Empty or only whitespace: an unset variable in a compose file or a unit, i.e. no secret.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Used when `MUSTER_SECRET_KEY` is unset, so a laptop works out of the box; muster warns at
/// start. Never use it in production: anyone can read it here.
const DEVELOPMENT_SECRET: &[u8; 32] = b"muster-development-secret-key!!!";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "security.secret_key must be the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error(
        "MUSTER_SECRET_KEY (security.secret_key) is not set: generate one with `openssl rand -base64 32` and give every muster process the same; on a laptop, MUSTER_DEVELOPMENT=true uses a built-in development key instead"
    )]
    Missing,
    #[error("a stored secret does not decrypt with this secret key (was the key changed?)")]
    Decrypt,
}

/// Derived keys. `Debug` never shows them.
#[derive(Clone)]
pub struct Secrets {
    encryption: [u8; 32],
    pseudonym: [u8; 32],
    pub is_development: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(***)")
    }
}

fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Secrets {
    /// From the configured base64 secret, or the development secret when there is none.
    pub fn from_config(secret_key: Option<&str>) -> Result<Self, SecretError> {
        let (raw, is_development) = match secret_key {
            Some(k) => {
                let raw = B64.decode(k.trim()).map_err(|_| SecretError::BadKey)?;
                if raw.len() != 32 {
                    return Err(SecretError::BadKey);
                }
                (raw, false)
            }
            None => (DEVELOPMENT_SECRET.to_vec(), true),
        };
        Ok(Self {
            encryption: derive(&raw, "muster/credentials/v1"),
            pseudonym: derive(&raw, "muster/participants/v1"),
            is_development,
        })
    }

    /// AES-256-GCM with a random nonce; the output is `nonce || ciphertext`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new((&self.encryption).into());
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(&nonce, plaintext)
                .expect("AES-GCM encryption of an in-memory buffer cannot fail"),
        );
        out
    }

    pub fn decrypt(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        Aes256Gcm::new((&self.encryption).into())
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Decrypt)
    }

    /// The participant's pseudonym: keyed HMAC-SHA256, hex. Stable for a platform secret, so
    /// dwell times and re-entries can be computed; not reversible without the secret.
    pub fn pseudonymize(&self, participant_id: &str) -> String {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&self.pseudonym).expect("HMAC takes any key");
        mac.update(participant_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips_and_detects_tampering() {
        let s = Secrets::from_config(Some(&B64.encode([7u8; 32]))).unwrap();
        let sealed = s.encrypt(b"api key");
        assert_ne!(&sealed[12..], b"api key");
        assert_eq!(s.decrypt(&sealed).unwrap(), b"api key");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(s.decrypt(&bad).is_err());
        let other = Secrets::from_config(Some(&B64.encode([8u8; 32]))).unwrap();
        assert!(other.decrypt(&sealed).is_err());
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_opaque() {
        let a = Secrets::from_config(Some(&B64.encode([1u8; 32]))).unwrap();
        let b = Secrets::from_config(Some(&B64.encode([2u8; 32]))).unwrap();
        assert_eq!(a.pseudonymize("P-1"), a.pseudonymize("P-1"));
        assert_ne!(a.pseudonymize("P-1"), a.pseudonymize("P-2"));
        assert_ne!(a.pseudonymize("P-1"), b.pseudonymize("P-1"));
        assert_eq!(a.pseudonymize("P-1").len(), 64);
        assert!(!a.pseudonymize("P-1").contains("P-1"));
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialized_config() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2-hunter2");
        assert!(Secret::new(" \t").is_blank());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Secrets::from_config(Some("not base64!")).is_err());
        assert!(Secrets::from_config(Some(&B64.encode([1u8; 16]))).is_err());
        assert!(Secrets::from_config(None).unwrap().is_development);
    }
}
