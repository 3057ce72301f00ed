//! API keys: `mk_` and 256 random bits, shown once and stored only as their SHA-256 (a key is
//! random enough that a fast hash suffices, and the lookup by hash leaks nothing about other
//! keys). Its first characters identify it in listings.

use std::sync::Arc;

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::Partner;
use crate::feed::memory::{KeysRead, LiveKey, Memory};
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

/// Where keys are checked: the process's in-memory view first, then PostgreSQL (a key the
/// view does not hold, or any key while the view is not fresh). Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    pool: deadpool_postgres::Pool,
    memory: Arc<Memory>,
}

impl Keys {
    pub fn new(pool: deadpool_postgres::Pool, memory: Arc<Memory>) -> Self {
        Self { pool, memory }
    }

    /// Reloads this process's view of the keys now, after this process changed them (the
    /// others reload when the change's notification reaches them): what a route just wrote
    /// reads back at once.
    /// A failure only leaves the notification to do it (the write is committed).
    pub async fn refresh(&self) {
        if !self.memory.is_fresh() {
            return;
        }
        let read = async {
            let client = self.pool.get().await?;
            live_keys(&self.memory, &client).await
        };
        match read.await {
            Ok(keys) => self.memory.replace_keys(keys),
            Err(e) => tracing::warn!(error = %e.title, "reloading the keys after a change"),
        }
    }

    /// The partner holding `key`, if it is a live key of a live partner (no rate limit applied).
    pub async fn lookup(&self, key: &str) -> Result<Option<Partner>, Problem> {
        self.lookup_hash(&hash(key)).await
    }

    /// The partner holding the key of hash `key_hash`, if it is a live key of a live partner: a
    /// web session keeps only the hash, and is checked again on every request through here.
    pub async fn lookup_hash(&self, key_hash: &[u8]) -> Result<Option<Partner>, Problem> {
        if let Some(partner) = self.memory.partner(key_hash, chrono::Utc::now()) {
            return Ok(Some(partner));
        }
        metrics::counter!("muster_api_key_lookups_total", "from" => "postgres").increment(1);
        let client = self.pool.get().await?;
        // Prepared once per connection.
        let stmt = client
            .prepare_cached(&format!("{LIVE_KEYS} AND k.key_hash = $1"))
            .await?;
        match client.query_opt(&stmt, &[&key_hash]).await? {
            Some(row) => Ok(Some(live_key(&row)?.1.partner)),
            None => Ok(None),
        }
    }
}

/// The channel every change to `api_keys` or `partners` notifies (a trigger; see the API's
/// migrations).
pub const KEYS_CHANNEL: &str = "muster_keys";

/// The live keys of live partners (a rotated key lives until its grace period ends).
const LIVE_KEYS: &str = "SELECT k.key_hash, p.partner_id, p.name, p.tier, p.event_ids,
        k.key_prefix, k.revoked_at
     FROM api_keys k JOIN partners p USING (partner_id)
     WHERE p.revoked_at IS NULL AND (k.revoked_at IS NULL OR k.revoked_at > now())";

fn live_key(row: &tokio_postgres::Row) -> Result<(Vec<u8>, LiveKey), Problem> {
    let partner = Partner {
        id: parsed(row, "partner_id")?,
        name: column(row, "name")?,
        tier: parsed(row, "tier")?,
        event_ids: column(row, "event_ids")?,
        key_prefix: column(row, "key_prefix")?,
        rate: None,
    };
    let key = LiveKey {
        partner,
        expires_at: column(row, "revoked_at")?,
    };
    Ok((column(row, "key_hash")?, key))
}

/// Every live key, for `memory` (its ticket taken before the read).
pub async fn live_keys(memory: &Memory, client: &crate::read::Client) -> Result<KeysRead, Problem> {
    let ticket = memory.key_ticket();
    let rows = client.query(LIVE_KEYS, &[]).await?;
    Ok(KeysRead {
        ticket,
        keys: rows.iter().map(live_key).collect::<Result<_, _>>()?,
    })
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
