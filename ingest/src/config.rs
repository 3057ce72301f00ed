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
    /// How often the registered-service list is re-read, to start new ones and stop removed ones.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            request_timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(5),
        }
    }
}
