//! The exactly-once micro-batch loop: read a batch, produce its outputs and the batch's offsets
//! in one Kafka transaction. Any failure aborts the transaction and the caller rebuilds the
//! clients, which resumes from the last committed offsets.
//!
//! A rebalance while a batch is being gathered is the subtle case: a partition revoked
//! mid-batch is re-read from its committed offset by its next owner, so the records already
//! gathered from it must not be processed here too. Rebalance events are served inside
//! `recv()`, in queue order, so dropping the revoked partitions' records after each `recv()`
//! keeps exactly the records this consumer still owns.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
use muster_runtime::KafkaConfig;
use muster_runtime::config::OffsetReset;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
    StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::config::ProcessorsConfig;

use muster_runtime::batch::{BatchBounds, InRecord, OutRecord, gather, produce_all};

/// Remembers what rebalances did, for the loop to act on between records.
pub struct LoopContext {
    log: Mutex<RebalanceLog>,
    /// True while a batch's transaction is being committed in the background.
    committing: Arc<InFlight>,
    /// Where a partition the group has never committed starts.
    reset: OffsetReset,
}

impl LoopContext {
    fn new(reset: OffsetReset) -> Self {
        Self {
            log: Mutex::default(),
            committing: Arc::default(),
            reset,
        }
    }
}

/// Runs blocking Kafka calls made inside a rebalance callback, which `recv()` serves on a
/// runtime thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Under `latest`, a partition the group has never committed starts at the end of the log as
/// it is when it is assigned. If it changed owner before its first commit, the next owner would
/// start at the end as it is *then*, skipping everything in between. Committing that start as
/// the partition is assigned (before the consumer looks up its committed offset) makes the
/// first owner's starting point the group's.
fn pin_starts(
    consumer: &BaseConsumer<LoopContext>,
    assigned: &TopicPartitionList,
) -> KafkaResult<usize> {
    let timeout = Duration::from_secs(10);
    let committed = consumer.committed_offsets(assigned.clone(), timeout)?;
    let mut pins = TopicPartitionList::new();
    for e in committed.elements() {
        if e.offset() == Offset::Invalid {
            let (_, end) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
            pins.add_partition_offset(e.topic(), e.partition(), Offset::Offset(end))?;
        }
    }
    if pins.count() > 0 {
        consumer.commit(&pins, CommitMode::Sync)?;
    }
    Ok(pins.count())
}

/// A flag with a condition variable: a revoke waits until the commit in flight is done, so the
/// partition's next owner reads offsets that include it (or that it will wait for).
#[derive(Default)]
struct InFlight {
    busy: Mutex<bool>,
    done: Condvar,
}

impl InFlight {
    fn set(&self, busy: bool) {
        *self.busy.lock().expect("in-flight flag poisoned") = busy;
        if !busy {
            self.done.notify_all();
        }
    }

    fn wait_idle(&self) {
        let mut busy = self.busy.lock().expect("in-flight flag poisoned");
        while *busy {
            busy = self.done.wait(busy).expect("in-flight flag poisoned");
        }
    }
}

/// Clears the in-flight flag however the commit task ends.
struct ClearOnDrop(Arc<InFlight>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[derive(Default)]
struct RebalanceLog {
    /// Partitions revoked (or lost) since the loop last looked.
    revoked: Vec<(String, i32)>,
    /// Assignments received so far; a change tells stateful processors to restore.
    assignments: u64,
}

impl ClientContext for LoopContext {}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                // Let the transaction in flight, which may hold these partitions' offsets,
                // finish before they go: their next owner then starts after it.
                blocking(|| self.committing.wait_idle());
                let mut log = self.log.lock().expect("rebalance log poisoned");
                for e in tpl.elements() {
                    log.revoked.push((e.topic().to_owned(), e.partition()));
                }
            }
            Rebalance::Assign(tpl) if self.reset == OffsetReset::Latest => {
                match blocking(|| pin_starts(consumer, tpl)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(partitions = n, "new partitions' starts committed"),
                    // The consumer still starts at the end; only a change of owner before the
                    // first commit would skip records, as it did before the pin.
                    Err(e) => {
                        tracing::warn!(error = %e, "committing new partitions' starts failed")
                    }
                }
            }
            _ => {}
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
            self.log.lock().expect("rebalance log poisoned").assignments += 1;
        }
    }
}

impl LoopContext {
    fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut self.log.lock().expect("rebalance log poisoned").revoked)
    }

    fn assignments(&self) -> u64 {
        self.log.lock().expect("rebalance log poisoned").assignments
    }
}

pub struct TransactionalLoop {
    consumer: StreamConsumer<LoopContext>,
    producer: FutureProducer,
    cfg: ProcessorsConfig,
    /// The previous batch's commit, running while the next batch is read and processed.
    in_flight: tokio::sync::Mutex<Option<JoinHandle<anyhow::Result<()>>>>,
}

impl TransactionalLoop {
    /// Joins `group` on the topics whose base names are `topics` (behind
    /// `kafka.topic_prefix`) with a fresh transactional producer. The transactional id is
    /// `group` and `instance`, unique per worker, as is its consumer's static membership (see
    /// `KafkaConfig::static_consumer`); zombie fencing comes from the consumer group
    /// generation (KIP-447), which `send_offsets_to_transaction` checks. A worker passes the
    /// same `instance` to every session: the new producer's `init_transactions` then aborts
    /// the transaction a failed session left open (say, with the broker down) at once. Under a
    /// new id it stayed open until `transaction.timeout.ms`, and read_committed consumers
    /// downstream read nothing past it meanwhile.
    pub fn new(
        kafka: &KafkaConfig,
        group: &str,
        instance: &str,
        topics: &[String],
        cfg: ProcessorsConfig,
    ) -> anyhow::Result<Self> {
        let consumer: StreamConsumer<LoopContext> = kafka
            .static_consumer(group, instance)
            .create_with_context(LoopContext::new(kafka.auto_offset_reset))
            .context("creating the Kafka consumer")?;
        let topics: Vec<String> = topics.iter().map(|t| kafka.topics().name(t)).collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .with_context(|| format!("subscribing to {topics:?}"))?;
        let producer: FutureProducer = kafka
            .producer()
            .set(
                "transactional.id",
                format!("{}.{instance}", kafka.group(group)),
            )
            .set(
                "transaction.timeout.ms",
                (cfg.transaction_timeout.as_millis() * 2).to_string(),
            )
            .create()
            .context("creating the transactional producer")?;
        let timeout = cfg.transaction_timeout;
        tokio::task::block_in_place(|| producer.init_transactions(timeout))
            .context("initialising Kafka transactions")?;
        Ok(Self {
            consumer,
            producer,
            cfg,
            in_flight: tokio::sync::Mutex::new(None),
        })
    }

    /// How many assignments this consumer has received; stateful processors restore their
    /// state when it changes, before processing the batch that follows.
    pub fn assignments(&self) -> u64 {
        self.consumer.context().assignments()
    }

    /// Waits for the first record (or `idle`), then gathers up to the batch bounds. Records of
    /// partitions revoked while gathering are dropped (their next owner re-reads them).
    pub async fn next_batch(&self, idle: Duration) -> anyhow::Result<Vec<InRecord>> {
        let ctx = self.consumer.context();
        ctx.take_revoked();
        let bounds = BatchBounds {
            max_records: self.cfg.batch_max_records,
            max_wait: self.cfg.batch_max_wait,
            idle,
            ..BatchBounds::default()
        };
        let drop_revoked = |batch: &mut Vec<InRecord>| {
            let revoked = ctx.take_revoked();
            if revoked.is_empty() {
                return;
            }
            let before = batch.len();
            batch.retain(|r| {
                !revoked
                    .iter()
                    .any(|(t, p)| *t == r.topic && *p == r.partition)
            });
            if before != batch.len() {
                tracing::info!(
                    dropped = before - batch.len(),
                    "partitions revoked mid-batch; their records are left to the next owner"
                );
                metrics::counter!("muster_processor_revoked_records_total")
                    .increment((before - batch.len()) as u64);
            }
        };
        let mut batch = gather(&self.consumer, bounds, |batch, _| {
            drop_revoked(batch);
            true
        })
        .await?;
        // A revoke served by the last `recv()`, the one that timed out, is applied here.
        drop_revoked(&mut batch);
        Ok(batch)
    }

    /// Produces `outputs` and commits `batch`'s offsets atomically, in the background: the
    /// caller reads and processes the next batch meanwhile. The previous batch's commit is
    /// awaited first (one transaction at a time), and its error, if any, returned here.
    pub async fn commit(&self, batch: &[InRecord], outputs: Vec<OutRecord>) -> anyhow::Result<()> {
        self.flush().await?;
        let offsets = next_offsets(batch)?;
        // The group generation now, before the next batch's reads serve any rebalance: a
        // rebalance since makes the broker refuse the offsets (KIP-447).
        let group = self
            .consumer
            .group_metadata()
            .context("the consumer has no group metadata")?;
        let producer = self.producer.clone();
        let timeout = self.cfg.transaction_timeout;
        let flag = self.consumer.context().committing.clone();
        flag.set(true);
        let clear = ClearOnDrop(flag);
        let task = tokio::spawn(async move {
            let _clear = clear;
            commit_transaction(&producer, offsets, group, outputs, timeout).await
        });
        *self.in_flight.lock().await = Some(task);
        Ok(())
    }

    /// Waits for the commit in flight; its error, if any.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let Some(task) = self.in_flight.lock().await.take() else {
            return Ok(());
        };
        task.await.context("the commit task panicked")?
    }
}

async fn commit_transaction(
    producer: &FutureProducer,
    offsets: TopicPartitionList,
    group: ConsumerGroupMetadata,
    outputs: Vec<OutRecord>,
    timeout: Duration,
) -> anyhow::Result<()> {
    tokio::task::block_in_place(|| producer.begin_transaction())
        .context("beginning a transaction")?;
    match produce_and_commit(producer, &offsets, &group, outputs, timeout).await {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Err(abort) = tokio::task::block_in_place(|| producer.abort_transaction(timeout))
            {
                tracing::error!(error = %abort, "aborting the transaction failed");
            }
            Err(e)
        }
    }
}

async fn produce_and_commit(
    producer: &FutureProducer,
    offsets: &TopicPartitionList,
    group: &ConsumerGroupMetadata,
    outputs: Vec<OutRecord>,
    timeout: Duration,
) -> anyhow::Result<()> {
    produce_all(producer, &outputs)
        .await
        .context("producing the batch's outputs")?;
    tokio::task::block_in_place(|| producer.send_offsets_to_transaction(offsets, group, timeout))
        .context("adding the consumed offsets to the transaction")?;
    tokio::task::block_in_place(|| producer.commit_transaction(timeout))
        .context("committing the transaction")?;
    Ok(())
}

/// The offset to resume from for each partition: one past the last record consumed.
fn next_offsets(batch: &[InRecord]) -> anyhow::Result<TopicPartitionList> {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for r in batch {
        let e = last.entry((&r.topic, r.partition)).or_insert(r.offset);
        *e = (*e).max(r.offset);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in last {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_one_past_the_last_record_per_partition() {
        let rec = |p, o| InRecord {
            topic: "t".into(),
            partition: p,
            offset: o,
            key: None,
            payload: vec![],
        };
        let tpl = next_offsets(&[rec(0, 5), rec(1, 9), rec(0, 7), rec(0, 6)]).unwrap();
        let got: Vec<_> = tpl
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(got, vec![(0, Offset::Offset(8)), (1, Offset::Offset(10))]);
    }
}
