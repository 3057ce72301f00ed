//! A batch's rows, grouped into Parquet files by the layout. Pure (no I/O), so the same rows
//! always give the same files: what makes rewriting a crashed batch safe.

use std::collections::BTreeMap;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::rows::{Archived, Located};
use muster_schemas::archive::{FileKey, date_of};

/// One Parquet file, ready to put below the archive's root.
#[derive(Debug)]
pub struct ArchiveFile {
    pub topic: &'static str,
    /// Relative to the archive's root, see `layout`.
    pub path: String,
    pub rows: usize,
    pub bytes: Vec<u8>,
}

/// Groups `rows` (one topic's records of a batch) by day, event and partition, each group in
/// log order, and encodes each group as one zstd-compressed Parquet file.
pub fn encode<T: Archived>(rows: Vec<Located<T>>) -> anyhow::Result<Vec<ArchiveFile>> {
    let mut groups: BTreeMap<FileKey, Vec<Located<T>>> = BTreeMap::new();
    for row in rows {
        let key = FileKey {
            date: date_of(row.record.event_time()),
            event_id: row.record.event_id().to_owned(),
            partition: row.partition,
        };
        groups.entry(key).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|(key, mut rows)| {
            rows.sort_by_key(|r| r.offset);
            let path = key.path(T::TOPIC, rows[0].offset);
            let batch = RecordBatch::try_new(T::schema(), T::columns(&rows))
                .with_context(|| format!("building the Arrow batch of {path}"))?;
            let bytes = to_parquet(&batch).with_context(|| format!("encoding {path}"))?;
            Ok(ArchiveFile {
                topic: T::TOPIC,
                path,
                rows: rows.len(),
                bytes,
            })
        })
        .collect()
}

fn to_parquet(batch: &RecordBatch) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::rows::tests::checkin;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use muster_schemas::{RawCheckin, TopicRecord};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const DAY: i64 = 86_400_000;
    const NEW_YEAR: i64 = 1_767_225_600_000;

    fn at(partition: i32, offset: i64, event: &str, millis: i64) -> Located<RawCheckin> {
        Located {
            partition,
            offset,
            record: checkin(event, millis),
        }
    }

    #[test]
    fn one_file_per_day_event_and_partition_in_log_order() {
        let rows = vec![
            at(0, 12, "a", NEW_YEAR + 1),
            at(0, 10, "a", NEW_YEAR - 1),
            at(0, 11, "a", NEW_YEAR + 2),
            at(1, 5, "a", NEW_YEAR),
            at(0, 13, "b", NEW_YEAR + DAY),
        ];
        let files = encode(rows).unwrap();
        let paths: Vec<(&str, usize)> = files.iter().map(|f| (f.path.as_str(), f.rows)).collect();
        let t = RawCheckin::TOPIC;
        assert_eq!(
            paths,
            vec![
                (
                    &*format!("{t}/date=2025-12-31/event=a/part-0-10.parquet"),
                    1
                ),
                (
                    &*format!("{t}/date=2026-01-01/event=a/part-0-11.parquet"),
                    2
                ),
                (&*format!("{t}/date=2026-01-01/event=a/part-1-5.parquet"), 1),
                (
                    &*format!("{t}/date=2026-01-02/event=b/part-0-13.parquet"),
                    1
                ),
            ]
        );

        let file = &files[1];
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.bytes.clone()))
                .unwrap()
                .build()
                .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches[0].schema(), RawCheckin::schema());
        let offsets: Vec<i64> = batches[0]
            .column_by_name("kafka_offset")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(offsets, vec![11, 12]);
    }

    #[test]
    fn the_same_rows_give_the_same_files() {
        let rows = || vec![at(0, 1, "a", NEW_YEAR), at(0, 2, "a", NEW_YEAR + 1)];
        let (first, again) = (encode(rows()).unwrap(), encode(rows()).unwrap());
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].path, again[0].path);
        assert_eq!(first[0].bytes, again[0].bytes);
    }
}
