use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[projections.archive]` in the config file: the raw archive for analysts.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Where the Parquet files go: `file:///var/lib/muster/archive` (or an absolute path), or
    /// `s3://bucket/prefix` in a build with the `muster-projections/s3` feature. Unset (the
    /// default): no archive. There is no default folder on purpose: years of history should
    /// land where someone chose, and a folder on one machine cannot serve several processes.
    pub url: Option<String>,
    /// Options of the object store, e.g. `aws_region`, `aws_endpoint`, `aws_allow_http` for an
    /// S3-compatible store. `AWS_*` environment variables are read too (these win); prefer them
    /// for credentials.
    pub options: BTreeMap<String, String>,
    /// A batch closes at this many records...
    pub batch_max_records: usize,
    /// ...or this many payload bytes (the whole batch is held in memory)...
    pub batch_max_bytes: usize,
    /// ...or this long after its first record. Each batch writes one file per topic, date, event
    /// and partition, so longer batches mean fewer, larger files.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            url: None,
            options: BTreeMap::new(),
            batch_max_records: 50_000,
            batch_max_bytes: 64 << 20,
            batch_max_wait: Duration::from_secs(60),
        }
    }
}

/// Option values may be credentials: never printed.
impl std::fmt::Debug for ArchiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: BTreeMap<&str, &str> =
            self.options.keys().map(|k| (k.as_str(), "***")).collect();
        f.debug_struct("ArchiveConfig")
            .field("url", &self.url)
            .field("options", &options)
            .field("batch_max_records", &self.batch_max_records)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("batch_max_wait", &self.batch_max_wait)
            .finish()
    }
}

impl ArchiveConfig {
    /// Checks what can be checked without I/O; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_max_records == 0 {
            return Err("projections.archive.batch_max_records must be at least 1".into());
        }
        if self.batch_max_bytes == 0 {
            return Err("projections.archive.batch_max_bytes must be at least 1".into());
        }
        if self.batch_max_wait.is_zero() {
            return Err("projections.archive.batch_max_wait must be more than 0".into());
        }
        Ok(())
    }
}
