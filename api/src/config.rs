use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[api]` in the config file. Its `Debug` shows the admin token as `***` (a `Secret`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (`MUSTER_API_ADDR`).
    pub addr: SocketAddr,
    /// Bearer token of the admin routes (`MUSTER_ADMIN_TOKEN`), at least 32 characters
    /// (`openssl rand -hex 32`); admin routes are refused while it is unset or blank.
    pub admin_token: Option<muster_runtime::secrets::Secret>,
    /// Seconds after which an event's realtime numbers are shown as stale instead of live.
    pub stale_after_secs: u64,
    /// Per key, per tier; per process (see the README).
    pub rate_limits: crate::auth::RateLimits,
    /// `[api.flight]`: Arrow Flight SQL for analysts' own tools.
    pub flight: FlightConfig,
    /// `[api.sql]`: `POST /api/premium/sql`, and what every SQL caller shares.
    pub sql: SqlConfig,
    /// `[api.web]`: the pages' sign-in sessions.
    pub web: WebConfig,
    /// `[api.feed]`: the live change feed and `GET /api/partner/stream`.
    pub feed: FeedConfig,
}

/// `[api.web]`: the web pages served at `/`, signed in with the admin token or a partner key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// How long a sign-in lasts; the session is then refused and its row pruned.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark cookies `Secure` on every answer: set it when TLS ends at a proxy that does not
    /// send `X-Forwarded-Proto: https` (with that header they are marked anyway).
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
        }
    }
}

/// `[api.feed]`: the change feed each `muster api` process listens to once and fans out to
/// its live subscribers (`GET /api/partner/stream`, the pages).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Changes a subscriber may fall behind the newest before it loses its place in the
    /// broadcast (it then catches up from the change log); memory for this many changes is
    /// shared by all subscribers, so a slow one never holds more.
    pub capacity: usize,
    /// Changes read from the log at a time (by the listener, and by a stream catching up).
    pub page: usize,
    /// The log is read this often even without a notification, in case one was missed.
    #[serde(with = "humantime_serde")]
    pub poll_every: Duration,
    /// A stream with nothing to send sends a comment this often, so proxies keep it open.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// A partner stream checks its key (revoked?) and grants again when it sends a change and
    /// the last check is older than this; so a revocation stops the flow within this time.
    #[serde(with = "humantime_serde")]
    pub recheck_grants: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            page: 500,
            poll_every: Duration::from_secs(5),
            keep_alive: Duration::from_secs(15),
            recheck_grants: Duration::from_secs(5),
        }
    }
}

impl FeedConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.capacity > 0, "api.feed.capacity must be at least 1");
        anyhow::ensure!(self.page > 0, "api.feed.page must be at least 1");
        for (name, d) in [
            ("poll_every", self.poll_every),
            ("keep_alive", self.keep_alive),
        ] {
            anyhow::ensure!(!d.is_zero(), "api.feed.{name} must be longer than 0 s");
        }
        Ok(())
    }
}

/// `[api.sql]`: the limits of `POST /api/premium/sql`. A query past one is refused with a
/// problem answer: `413` for an answer past `max_answer_bytes`, `422` past the time or memory
/// limit, `429` past the key's concurrent queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Time limit of a query.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Rows of an answer (and the most a request's `maxRows` may ask for); the rest is left out
    /// and the answer says `truncated`.
    pub max_rows: usize,
    /// Bytes of an answer, as Arrow arrays and again as JSON rows; a larger one is refused.
    pub max_answer_bytes: usize,
    /// Memory of one query (operators and answer); sorts, aggregations and joins spill to
    /// disk past it where they can, anything else is refused.
    pub memory_limit: usize,
    /// Queries one key (a premium key, or the admin token over Flight SQL) may run at once,
    /// here and over Flight SQL together; past it a query is refused at once.
    pub max_concurrent_queries: usize,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            timeout: crate::resources::sql::TIMEOUT,
            max_rows: crate::resources::sql::MAX_ROWS,
            max_answer_bytes: 16 << 20,
            memory_limit: 256 << 20,
            max_concurrent_queries: 2,
        }
    }
}

impl SqlConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_rows > 0, "api.sql.max_rows must be at least 1");
        anyhow::ensure!(
            !self.timeout.is_zero(),
            "api.sql.timeout must be longer than 0 s"
        );
        anyhow::ensure!(
            self.max_answer_bytes > 0,
            "api.sql.max_answer_bytes must be at least 1"
        );
        anyhow::ensure!(
            self.memory_limit > 0,
            "api.sql.memory_limit must be at least 1"
        );
        anyhow::ensure!(
            self.max_concurrent_queries > 0,
            "api.sql.max_concurrent_queries must be at least 1"
        );
        Ok(())
    }

    /// The limits of one query of `maxRows` rows at most (the configured rows when none).
    pub fn limits(&self, max_rows: Option<usize>) -> muster_analytics::Limits {
        muster_analytics::Limits {
            timeout: self.timeout,
            max_rows: max_rows.map_or(self.max_rows, |n| n.clamp(1, self.max_rows)),
            max_bytes: self.max_answer_bytes,
            memory: self.memory_limit,
        }
    }
}

/// `[api.flight]`: the Arrow Flight SQL endpoint, served by `muster api` beside the HTTP API.
/// The admin token queries every projection and the archive; a premium API key queries the
/// projections restricted to its events; anything that writes is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlightConfig {
    /// Listen address (gRPC, plain text: put TLS in front of it beyond loopback); unset, the
    /// endpoint is off.
    pub addr: Option<SocketAddr>,
    /// Time limit of a query with the admin token.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Rows of an answer with the admin token; the rest is left out.
    pub max_rows: usize,
    /// Time limit of a query with a premium key (as `POST /api/premium/sql`).
    #[serde(with = "humantime_serde")]
    pub partner_timeout: Duration,
    /// Rows of an answer with a premium key.
    pub partner_max_rows: usize,
    /// Bytes of an answer with the admin token (Arrow); a larger answer is refused with
    /// RESOURCE_EXHAUSTED.
    pub max_answer_bytes: usize,
    /// Memory of one query with the admin token; past it sorts, aggregations and joins spill
    /// to disk where they can, anything else is refused with RESOURCE_EXHAUSTED.
    pub memory_limit: usize,
    /// Bytes of an answer with a premium key.
    pub partner_max_answer_bytes: usize,
    /// Memory of one query with a premium key.
    pub partner_memory_limit: usize,
    /// `[projections.archive] url`, set by the binary: the admin also sees the archive.
    #[serde(skip)]
    pub archive_url: Option<String>,
}

impl FlightConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, rows, timeout) in [
            ("", self.max_rows, self.timeout),
            ("partner_", self.partner_max_rows, self.partner_timeout),
        ] {
            anyhow::ensure!(rows > 0, "api.flight.{name}max_rows must be at least 1");
            anyhow::ensure!(
                !timeout.is_zero(),
                "api.flight.{name}timeout must be longer than 0 s"
            );
        }
        for (name, bytes) in [
            ("max_answer_bytes", self.max_answer_bytes),
            ("memory_limit", self.memory_limit),
            ("partner_max_answer_bytes", self.partner_max_answer_bytes),
            ("partner_memory_limit", self.partner_memory_limit),
        ] {
            anyhow::ensure!(bytes > 0, "api.flight.{name} must be at least 1");
        }
        Ok(())
    }
}

impl Default for FlightConfig {
    fn default() -> Self {
        Self {
            addr: None,
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            partner_timeout: crate::resources::sql::TIMEOUT,
            partner_max_rows: crate::resources::sql::MAX_ROWS,
            max_answer_bytes: 256 << 20,
            memory_limit: 1 << 30,
            partner_max_answer_bytes: 16 << 20,
            partner_memory_limit: 256 << 20,
            archive_url: None,
        }
    }
}

/// Shorter admin tokens are refused at start: the token opens every event and every partner.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

impl ApiConfig {
    /// Fails closed: a blank admin token (an empty variable in a compose file or a unit) is
    /// no token, so the admin API is closed; a short one stops the start.
    pub fn validate(&mut self) -> anyhow::Result<()> {
        if self.admin_token.as_ref().is_some_and(|t| t.is_blank()) {
            tracing::warn!("MUSTER_ADMIN_TOKEN is empty: the admin API is closed");
            self.admin_token = None;
        }
        if let Some(t) = &self.admin_token {
            anyhow::ensure!(
                t.expose().trim().chars().count() >= MIN_ADMIN_TOKEN_LEN,
                "api.admin_token (MUSTER_ADMIN_TOKEN) must be at least {MIN_ADMIN_TOKEN_LEN} characters: make one with `openssl rand -hex 32`"
            );
        }
        self.sql.validate()?;
        anyhow::ensure!(
            self.web.session_ttl >= Duration::from_secs(60),
            "api.web.session_ttl must be at least 1 minute"
        );
        self.feed.validate()?;
        self.flight.validate()
    }

    /// The admin token's value, if the admin API is open.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_ref().map(|t| t.expose())
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 8080).into(),
            admin_token: None,
            stale_after_secs: 300,
            rate_limits: Default::default(),
            flight: Default::default(),
            sql: Default::default(),
            web: Default::default(),
            feed: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_runtime::secrets::Secret;

    #[test]
    fn blank_admin_token_closes_the_admin_api_and_short_ones_are_refused() {
        let mut c = ApiConfig {
            admin_token: Some(Secret::new(" ")),
            ..Default::default()
        };
        c.validate().unwrap();
        assert!(c.admin_token.is_none());
        c.admin_token = Some(Secret::new("short"));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("32") && err.contains("openssl"), "{err}");
        c.admin_token = Some(Secret::new("x".repeat(32)));
        c.validate().unwrap();
    }
}
