use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[projections]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionsConfig {
    /// A batch closes at this many records...
    pub batch_max_records: usize,
    /// ...or this long after its first record.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        Self {
            batch_max_records: 2000,
            batch_max_wait: Duration::from_millis(250),
        }
    }
}
