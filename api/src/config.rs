use std::net::SocketAddr;

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
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("addr", &self.addr)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("stale_after_secs", &self.stale_after_secs)
            .field("rate_limits", &self.rate_limits)
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
        }
    }
}
