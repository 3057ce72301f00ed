//! Micro-batches read from Kafka, shared by processors, projections and the archive: the first
//! record opens the batch, which closes at a record count, a byte count or a time after that
//! first record, whichever comes first. An idle topic yields an empty batch after `idle`, so
//! callers can check for shutdown without a record arriving.

use std::time::Duration;

use anyhow::Context;
use muster_schemas::SourceOffset;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::time::Instant;

/// A consumed record, owned so a batch outlives the consumer's buffers.
#[derive(Debug, Clone)]
pub struct InRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka key (the event id), when it is UTF-8.
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

impl InRecord {
    pub fn from_message(msg: &impl Message) -> Self {
        Self {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            payload: msg.payload().unwrap_or_default().to_vec(),
        }
    }

    /// Where the record came from, for lineage in outputs and dead letters.
    pub fn source(&self) -> SourceOffset {
        SourceOffset {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

/// Queues every record, then waits until Kafka acknowledged them all: one round trip's wait
/// for the whole lot instead of one per record.
pub async fn produce_all(producer: &FutureProducer, records: &[OutRecord]) -> anyhow::Result<()> {
    let mut deliveries = Vec::with_capacity(records.len());
    for out in records {
        let mut record = FutureRecord::to(&out.topic).payload(&out.payload);
        if let Some(k) = &out.key {
            record = record.key(k);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .with_context(|| format!("queueing a record for {}", out.topic))?;
        deliveries.push(delivery);
    }
    for d in deliveries {
        d.await
            .context("the producer dropped a delivery")?
            .map_err(|(e, _)| e)
            .context("producing a record")?;
    }
    Ok(())
}

/// How big a batch gets and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct BatchBounds {
    pub max_records: usize,
    /// Payload bytes past which the batch closes.
    pub max_bytes: usize,
    /// Time from the batch's first record to its close.
    pub max_wait: Duration,
    /// Time to wait for a first record before returning an empty batch.
    pub idle: Duration,
}

impl Default for BatchBounds {
    fn default() -> Self {
        Self {
            max_records: 2000,
            max_bytes: usize::MAX,
            max_wait: Duration::from_millis(250),
            idle: Duration::from_secs(1),
        }
    }
}

/// Whether a consumer error only reports a lost connection, which librdkafka recovers from by
/// itself. Such errors are waited through, not returned: a caller that dropped its consumer
/// over one while the broker was down left a member behind that the broker no longer hears
/// from, and the next consumer's join waited for that member's session to time out.
pub fn is_transient(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::NotCoordinator
        )
    )
}

/// Gathers one batch. `admit` runs after each `recv()`, before the new record is added, and
/// says whether to add it: rebalance callbacks run inside `recv()`, so this is where a caller
/// drops records of partitions it no longer owns (from the batch) or records it has already
/// seen (the new one).
pub async fn gather<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    bounds: BatchBounds,
    mut admit: impl FnMut(&mut Vec<InRecord>, &InRecord) -> bool,
) -> anyhow::Result<Vec<InRecord>> {
    let mut batch: Vec<InRecord> = Vec::new();
    let mut bytes = 0;
    let mut deadline = Instant::now() + bounds.idle;
    while batch.len() < bounds.max_records && bytes < bounds.max_bytes {
        let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) if is_transient(&e) => {
                tracing::warn!(error = %e, "Kafka unreachable; the consumer reconnects by itself");
                continue;
            }
            Ok(r) => r.context("reading from Kafka")?,
        };
        let record = InRecord::from_message(&msg);
        if !admit(&mut batch, &record) {
            continue;
        }
        if batch.is_empty() {
            deadline = Instant::now() + bounds.max_wait;
        }
        bytes += record.payload.len();
        batch.push(record);
    }
    Ok(batch)
}
