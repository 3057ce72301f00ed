//! Reading a whole topic as a read_committed consumer sees it: what the stages' transactions
//! committed, from the first record to the last stable offset.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::KafkaConfig;
use muster_schemas::{Codec, TopicRecord};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// A record and where it is.
pub struct At<R> {
    pub partition: i32,
    pub offset: i64,
    pub record: R,
}

/// Every committed record of `R`'s topic, decoded; a record that does not decode is an error
/// (every producer of these topics encodes with the registry).
pub async fn read_all<R: TopicRecord>(
    kafka: &KafkaConfig,
    codec: &Codec,
) -> anyhow::Result<Vec<At<R>>> {
    let topic = codec.topics().of::<R>();
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", format!("{}.reconcile", kafka.group_prefix))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the reconcile consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of {topic}"))?;
    // Each partition to its end as it is now: a record committed later is the next pass's.
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
            .with_context(|| format!("reading the end of {topic} {}", p.id()))?;
        if high > low {
            ends.insert(p.id(), high);
            assignment.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut raw = Vec::new();
    // Nothing for a while: the rest is behind an open transaction (or only its marker), and
    // what it holds is the next pass's.
    let mut idle_since = Instant::now();
    while !ends.is_empty() && idle_since.elapsed() < Duration::from_secs(3) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.with_context(|| format!("reading {topic}"))?;
            if let Some(bytes) = m.payload() {
                raw.push((m.partition(), m.offset(), bytes.to_vec()));
            }
            idle_since = Instant::now();
        }
        // Past the end: the position counts the transaction markers a record lacks.
        let position = consumer.position()?;
        ends.retain(|p, end| {
            !matches!(position.find_partition(&topic, *p).map(|e| e.offset()),
                      Some(Offset::Offset(at)) if at >= *end)
        });
    }
    let mut records = Vec::with_capacity(raw.len());
    for (partition, offset, bytes) in raw {
        let record = codec
            .decode::<R>(&bytes)
            .await
            .with_context(|| format!("decoding {topic} {partition}@{offset}"))?;
        records.push(At {
            partition,
            offset,
            record,
        });
    }
    Ok(records)
}
