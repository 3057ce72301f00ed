//! Micro-batches read from Kafka, shared by processors and projections: the first record opens
//! the batch, which closes at a record count or a time after that first record, whichever
//! comes first. An idle topic yields an empty batch after `idle`, so callers can check for
//! shutdown without a record arriving.

use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
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

/// How big a batch gets and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct BatchBounds {
    pub max_records: usize,
    /// Time from the batch's first record to its close.
    pub max_wait: Duration,
    /// Time to wait for a first record before returning an empty batch.
    pub idle: Duration,
}

/// Gathers one batch. `after_recv` runs after each `recv()`, before the new record is added:
/// rebalance callbacks run inside `recv()`, so this is where a caller drops records of
/// partitions it no longer owns.
pub async fn gather<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    bounds: BatchBounds,
    mut after_recv: impl FnMut(&mut Vec<InRecord>),
) -> anyhow::Result<Vec<InRecord>> {
    let mut batch: Vec<InRecord> = Vec::new();
    let mut deadline = Instant::now() + bounds.idle;
    while batch.len() < bounds.max_records {
        let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(r) => r.context("reading from Kafka")?,
        };
        after_recv(&mut batch);
        if batch.is_empty() {
            deadline = Instant::now() + bounds.max_wait;
        }
        batch.push(InRecord {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            payload: msg.payload().unwrap_or_default().to_vec(),
        });
    }
    Ok(batch)
}
