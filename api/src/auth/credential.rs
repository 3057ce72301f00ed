//! What a web session stands for: the secret it was opened with, kept only as its SHA-256 and
//! checked again through the same code as the JSON API on every request, so a revoked key, a
//! revoked partner or a changed admin token ends the session at once.

use subtle::ConstantTimeEq;
use warp::http::StatusCode;

use super::{Auth, Viewer, check_admin, keys};
use crate::problem::Problem;

/// Which secret a session was opened with, by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The admin token's hash: a restart with another token ends the session.
    Admin(Vec<u8>),
    /// A partner key's hash (`api_keys.key_hash`).
    Key(Vec<u8>),
}

impl Credential {
    /// `(kind, hash)` as the sessions table stores them.
    pub fn parts(&self) -> (&'static str, &[u8]) {
        match self {
            Self::Admin(h) => ("admin", h),
            Self::Key(h) => ("key", h),
        }
    }

    /// The credential of a partner key just made (a rotation), not looked up again.
    pub fn of_new_key(key: &str) -> Self {
        Self::Key(keys::hash(key))
    }

    pub fn from_parts(kind: &str, hash: Vec<u8>) -> Option<Self> {
        match kind {
            "admin" => Some(Self::Admin(hash)),
            "key" => Some(Self::Key(hash)),
            _ => None,
        }
    }
}

/// How a request uses a credential: a page counts against its partner's rate limit, a live
/// update pushed to an open page does not (the page did not ask for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Request,
    Push,
}

impl Auth {
    /// The credential of `secret`, an admin token or a partner key, checked as the JSON API
    /// checks an `Authorization` or `x-api-key` header.
    pub async fn credential(&self, secret: &str) -> Result<Credential, Problem> {
        let secret = secret.trim();
        let header = format!("Bearer {secret}");
        if !secret.is_empty() && check_admin(self.admin_token.as_deref(), Some(&header)).is_ok() {
            return Ok(Credential::Admin(keys::hash(secret)));
        }
        let hash = keys::hash(secret);
        match self.keys.lookup_hash(&hash).await? {
            Some(_) if !secret.is_empty() => Ok(Credential::Key(hash)),
            _ => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credential",
                "The admin token or API key is unknown or revoked",
            )),
        }
    }

    /// The viewer `credential` stands for now: the admin while the token is still the one
    /// configured, a partner while its key and the partner are live (and, for a request,
    /// within its rate limit).
    pub async fn viewer_of(&self, credential: &Credential, usage: Use) -> Result<Viewer, Problem> {
        let gone = || {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "session-ended",
                "The credential of this session is no longer valid",
            )
        };
        match credential {
            Credential::Admin(hash) => {
                let current = self
                    .admin_token
                    .as_deref()
                    .filter(|t| !t.trim().is_empty())
                    .map(keys::hash)
                    .ok_or_else(gone)?;
                if bool::from(current.ct_eq(hash)) {
                    Ok(Viewer::Admin)
                } else {
                    Err(gone())
                }
            }
            Credential::Key(hash) => {
                let mut partner = self.keys.lookup_hash(hash).await?.ok_or_else(gone)?;
                if usage == Use::Request {
                    partner.rate = Some(self.limits.check(&partner)?);
                }
                Ok(Viewer::Partner(partner))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_through_their_stored_parts() {
        for c in [Credential::Admin(vec![1, 2]), Credential::Key(vec![3])] {
            let (kind, hash) = c.parts();
            assert_eq!(Credential::from_parts(kind, hash.to_vec()), Some(c.clone()));
        }
        assert_eq!(Credential::from_parts("other", vec![]), None);
    }
}
