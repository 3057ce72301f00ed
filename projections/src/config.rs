use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archive::ArchiveConfig;

/// `[projections]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionsConfig {
    /// A batch closes at this many records...
    pub batch_max_records: usize,
    /// ...or this long after its first record.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// How long time series are kept.
    pub retention: RetentionConfig,
    /// Change-log rows (which events each batch changed, what the API's live feed and
    /// `Last-Event-ID` resumes read) older than this are deleted by the retention pass; a
    /// client resuming from before it is told to start over.
    #[serde(with = "humantime_serde")]
    pub change_log_retention: Duration,
    /// Run only these projections (by name); empty runs every one.
    pub only: Vec<String>,
    /// `[projections.archive]`: the raw and normalized topics as Parquet files; off unless its
    /// `url` is set.
    #[serde(default)]
    pub archive: ArchiveConfig,
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        Self {
            batch_max_records: 2000,
            batch_max_wait: Duration::from_millis(250),
            retention: RetentionConfig::default(),
            change_log_retention: Duration::from_secs(3600),
            only: Vec::new(),
            archive: ArchiveConfig::default(),
        }
    }
}

impl ProjectionsConfig {
    pub fn batches(&self) -> muster_runtime::projection::Batches {
        muster_runtime::projection::Batches {
            max_records: self.batch_max_records,
            max_wait: self.batch_max_wait,
        }
    }
}

/// `[projections.retention]`: minute buckets for recent detail, hour buckets for history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Minute buckets older than this are deleted (their hours stay).
    #[serde(with = "humantime_serde")]
    pub minutes: Duration,
    /// Hour buckets older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub hours: Duration,
    /// How often the retention pass runs.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Rows of the tables SQL processors declare (`-- table:`) whose time column is older
    /// than this are deleted.
    #[serde(with = "humantime_serde")]
    pub tables: Duration,
    /// Dead letters (`dead_letter_log`, the admin's dead-letter page) older than this are
    /// deleted (the topic keeps them for its own retention).
    #[serde(with = "humantime_serde")]
    pub dead_letters: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            minutes: Duration::from_secs(14 * 86_400),
            hours: Duration::from_secs(400 * 86_400),
            every: Duration::from_secs(600),
            tables: Duration::from_secs(400 * 86_400),
            dead_letters: Duration::from_secs(30 * 86_400),
        }
    }
}
