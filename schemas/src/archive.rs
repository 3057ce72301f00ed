//! The Parquet archive's contract between its writer (`muster project`) and its readers
//! (`muster sql`, the insights, analysts' tools): which topics it holds, the table each is read
//! as, and where a row goes:
//! `<topic>/date=YYYY-MM-DD/event=<eventId>/part-<partition>-<firstOffset>.parquet`.
//! Hive-style folder names, so DataFusion (and Spark, DuckDB, Athena) read `date` and `event`
//! as partition columns and prune by them. Names are a pure function of the rows, which is what
//! lets a crashed batch be rewritten over the same files. Folders are named by the topics' base
//! names, whatever `kafka.topic_prefix` is.

use chrono::{DateTime, NaiveDate};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::records::TopicRecord;
use crate::{NormalizedMetrics, RawCheckin, RawSnapshot};

/// The archived topics.
pub const TOPICS: [&str; 3] = [
    RawSnapshot::TOPIC,
    RawCheckin::TOPIC,
    NormalizedMetrics::TOPIC,
];

/// The SQL table each archived topic is read as.
pub const TABLES: [(&str, &str); 3] = [
    ("archive_snapshots", TOPICS[0]),
    ("archive_checkins", TOPICS[1]),
    ("archive_normalized", TOPICS[2]),
];

/// The URL of `projections.archive.url`: an absolute path is a local folder.
pub fn parse_url(url: &str) -> Result<Url, String> {
    if url.starts_with('/') {
        return Url::from_directory_path(url)
            .map_err(|()| format!("projections.archive.url {url:?} is not a valid path"));
    }
    Url::parse(url).map_err(|e| {
        format!(
            "projections.archive.url {url:?} is neither a URL (file://, s3://) nor an absolute path: {e}"
        )
    })
}

/// Everything but `-`, `_` and `.` is percent-encoded (DataFusion decodes partition values).
/// Registered event ids only use letters, digits and those three, so their folders read plainly.
const EVENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Hive's name for an empty partition value.
const EMPTY: &str = "__HIVE_DEFAULT_PARTITION__";

/// The UTC day of an event time in milliseconds (the epoch's day if it is out of range).
pub fn date_of(millis: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .date_naive()
}

/// An event id as a folder name's value.
pub fn encode_event(event_id: &str) -> String {
    if event_id.is_empty() {
        return EMPTY.to_owned();
    }
    utf8_percent_encode(event_id, EVENT).to_string()
}

/// The rows of one file: a topic's records of one day and event from one partition, in one batch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    pub date: NaiveDate,
    pub event_id: String,
    pub partition: i32,
}

impl FileKey {
    /// The file's path below the archive's root. `first_offset` is its first row's offset, so
    /// batches never collide (their offset ranges are disjoint) and a redone batch overwrites.
    pub fn path(&self, topic: &str, first_offset: i64) -> String {
        format!(
            "{topic}/date={}/event={}/part-{}-{first_offset}.parquet",
            self.date.format("%Y-%m-%d"),
            encode_event(&self.event_id),
            self.partition,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_hive_style_by_utc_day_and_event() {
        // 2025-12-31T23:59:59.999Z and one millisecond later.
        let before = 1_767_225_599_999;
        assert_eq!(date_of(before).to_string(), "2025-12-31");
        assert_eq!(date_of(before + 1).to_string(), "2026-01-01");
        let key = FileKey {
            date: date_of(before),
            event_id: "expo-2026".into(),
            partition: 2,
        };
        assert_eq!(
            key.path("muster.raw.checkins.v1", 4711),
            "muster.raw.checkins.v1/date=2025-12-31/event=expo-2026/part-2-4711.parquet"
        );
    }

    #[test]
    fn odd_event_ids_stay_one_folder() {
        assert_eq!(encode_event("fest_2026.v2"), "fest_2026.v2");
        assert_eq!(encode_event("a/b c=d%"), "a%2Fb%20c%3Dd%25");
        assert_eq!(encode_event(".."), "..");
        assert_eq!(encode_event("東京"), "%E6%9D%B1%E4%BA%AC");
        assert_eq!(encode_event(""), "__HIVE_DEFAULT_PARTITION__");
    }

    #[test]
    fn out_of_range_times_fall_back_to_the_epoch() {
        assert_eq!(date_of(i64::MAX).to_string(), "1970-01-01");
        assert_eq!(date_of(-1).to_string(), "1969-12-31");
    }
}
