use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[processors]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorsConfig {
    /// A micro-batch closes at this many records...
    pub batch_max_records: usize,
    /// ...or this long after its first record, whichever comes first.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// Timeout of a transaction's commit or abort.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// Run only these processors (by name); empty runs every registered one.
    pub only: Vec<String>,
    /// Folders of extra SQL processors (`*.sql` files), beside the built-in `processors/sql/`.
    pub sql_dirs: Vec<std::path::PathBuf>,
    /// A record whose event time is older than this when it reached muster is too late for its
    /// window and goes to the dead-letter topic instead.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Thresholds of the alerts processor.
    pub alerts: crate::alerts::AlertRules,
}

impl Default for ProcessorsConfig {
    fn default() -> Self {
        Self {
            batch_max_records: 1000,
            batch_max_wait: Duration::from_millis(500),
            transaction_timeout: Duration::from_secs(30),
            only: Vec::new(),
            sql_dirs: Vec::new(),
            allowed_lateness: Duration::from_secs(300),
            alerts: crate::alerts::AlertRules::default(),
        }
    }
}
