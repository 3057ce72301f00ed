//! API keys: `mk_` and 256 random bits, shown once and stored only as their SHA-256 (a key is
//! random enough that a fast hash suffices, and the lookup by hash leaks nothing about other
//! keys). Its first characters identify it in listings.

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::Partner;
use crate::problem::Problem;
use crate::read::{column, parsed};

/// A new key, as shown to the partner this once.
#[derive(Debug, Clone)]
pub struct Key {
    pub key: String,
    pub prefix: String,
}

impl Key {
    fn new() -> Self {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("mk_{hex}");
        let prefix = key[..11].to_owned();
        Self { key, prefix }
    }

    /// A new key for `partner`, stored by its hash.
    pub async fn insert(client: &impl GenericClient, partner: uuid::Uuid) -> Result<Self, Problem> {
        let key = Self::new();
        client
            .execute(
                "INSERT INTO api_keys (key_hash, partner_id, key_prefix) VALUES ($1, $2, $3)",
                &[&hash(&key.key), &partner.to_string(), &key.prefix],
            )
            .await?;
        Ok(key)
    }
}

/// What a key is stored and looked up by.
pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The partner holding `key`, if it is a live key of a live partner (no rate limit applied).
pub async fn lookup(pool: &deadpool_postgres::Pool, key: &str) -> Result<Option<Partner>, Problem> {
    lookup_hash(pool, &hash(key)).await
}

/// The partner holding the key of hash `key_hash`, if it is a live key of a live partner: a
/// web session keeps only the hash, and is checked again on every request through here.
pub async fn lookup_hash(
    pool: &deadpool_postgres::Pool,
    key_hash: &[u8],
) -> Result<Option<Partner>, Problem> {
    let client = pool.get().await?;
    // Prepared once per connection: every partner request runs this.
    let stmt = client
        .prepare_cached(
            "SELECT p.partner_id, p.name, p.tier, p.event_ids, k.key_prefix
             FROM api_keys k JOIN partners p USING (partner_id)
             WHERE k.key_hash = $1 AND p.revoked_at IS NULL
               AND (k.revoked_at IS NULL OR k.revoked_at > now())",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&key_hash]).await? else {
        return Ok(None);
    };
    Ok(Some(Partner {
        id: parsed(&row, "partner_id")?,
        name: column(&row, "name")?,
        tier: parsed(&row, "tier")?,
        event_ids: column(&row, "event_ids")?,
        key_prefix: column(&row, "key_prefix")?,
        rate: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let (a, b) = (Key::new(), Key::new());
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("mk_") && a.key.len() == 67);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(hash(&a.key).len(), 32);
        assert_ne!(hash(&a.key), hash(&b.key));
    }
}
