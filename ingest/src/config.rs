use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::service::EventServiceConfig;

/// `[ingest]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Services to register at start, in the registration shape of the admin API. Services
    /// registered earlier are kept in PostgreSQL and resumed too.
    pub services: Vec<EventServiceConfig>,
    /// Timeout of one upstream request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often a process renews its service leases and picks up new registrations.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// How long a lease lasts without renewal; a crashed process's services move to the
    /// others after this.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often each service's health check runs.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// Largest body read from an upstream poll or health check, in bytes; a larger answer is a
    /// failed collection, so a broken or hostile service cannot exhaust memory.
    pub max_body_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            request_timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(3),
            lease_ttl: Duration::from_secs(15),
            health_check_interval: Duration::from_secs(10),
            max_body_bytes: 4 << 20,
        }
    }
}

impl IngestConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_ttl < self.refresh_interval * 2 {
            return Err("ingest.lease_ttl must be at least twice ingest.refresh_interval".into());
        }
        if self.max_body_bytes == 0 {
            return Err("ingest.max_body_bytes must be positive".into());
        }
        Ok(())
    }
}
