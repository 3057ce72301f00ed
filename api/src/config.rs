use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[api]` in the config file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (`MUSTER_API_ADDR`).
    pub addr: SocketAddr,
    /// Bearer token of the admin routes (`MUSTER_ADMIN_TOKEN`); admin routes are refused while
    /// it is unset.
    pub admin_token: Option<String>,
    /// Seconds after which an event's realtime numbers are shown as stale instead of live.
    pub stale_after_secs: u64,
    /// Per key, per tier; per process (see the README).
    pub rate_limits: crate::partners::RateLimits,
    /// `[api.flight]`: Arrow Flight SQL for analysts' own tools.
    pub flight: FlightConfig,
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
        Ok(())
    }
}

impl Default for FlightConfig {
    fn default() -> Self {
        Self {
            addr: None,
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            partner_timeout: crate::sql::TIMEOUT,
            partner_max_rows: crate::sql::MAX_ROWS,
            archive_url: None,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("addr", &self.addr)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("stale_after_secs", &self.stale_after_secs)
            .field("rate_limits", &self.rate_limits)
            .field("flight", &self.flight)
            .finish()
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
        }
    }
}
