//! Runs a processor over a topic until a number of records went through, with outputs
//! redirected to another topic: for benchmarks, on the same exactly-once loop as production.

use std::time::{Duration, Instant};

use muster_runtime::KafkaConfig;
use muster_schemas::Codec;

use crate::config::ProcessorsConfig;
use crate::processor::Processor;
use crate::transactional::TransactionalLoop;

/// Where a drain's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drained {
    /// From the first record to the last commit.
    pub total: Duration,
    /// In `Processor::process` (decode, compute, encode).
    pub processing: Duration,
    /// Producing the outputs and committing the transactions.
    pub committing: Duration,
}

/// Consumes `records` records of `input` (from the beginning, under a fresh group), processes
/// them and commits each batch transactionally, writing every output to `output`.
pub async fn drain(
    p: &dyn Processor,
    kafka: &KafkaConfig,
    codec: &Codec,
    cfg: &ProcessorsConfig,
    input: &str,
    output: &str,
    records: usize,
) -> anyhow::Result<Drained> {
    let mut kafka = kafka.clone();
    kafka.auto_offset_reset = muster_runtime::config::OffsetReset::Earliest;
    let suffix = muster_runtime::unique_suffix();
    let group = format!("bench.{}.{suffix}", p.name());
    let tx = TransactionalLoop::new(&kafka, &group, &suffix, &[input.to_owned()], cfg.clone())?;
    let mut done = 0;
    let mut started = None;
    let mut spent = Drained::default();
    while done < records {
        let batch = tx.next_batch(Duration::from_secs(10)).await?;
        anyhow::ensure!(
            !batch.is_empty(),
            "no input after {done} of {records} records"
        );
        started.get_or_insert_with(Instant::now);
        let t = Instant::now();
        let mut outputs = p.process(&batch, codec).await?;
        for o in &mut outputs {
            o.topic = output.to_owned();
        }
        spent.processing += t.elapsed();
        let t = Instant::now();
        tx.commit(&batch, outputs).await?;
        spent.committing += t.elapsed();
        done += batch.len();
    }
    let t = Instant::now();
    tx.flush().await?;
    spent.committing += t.elapsed();
    spent.total = started.map(|s| s.elapsed()).unwrap_or_default();
    Ok(spent)
}
