//! `muster process`: runs every registered processor (or the ones named), each with its own
//! consumer group and exactly-once micro-batch loop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use muster_runtime::restart::{Backoff, Supervisor};
use muster_runtime::{Env, KafkaConfig, Shutdown, Workers};
use muster_schemas::{Codec, DeadLetter, TopicRecord};

use crate::config::ProcessorsConfig;
use crate::processor::Processor;
use crate::transactional::TransactionalLoop;

/// Every processor muster knows: the built-in ones and the SQL processors.
pub fn registry(cfg: &ProcessorsConfig) -> anyhow::Result<Vec<Arc<dyn Processor>>> {
    let mut all: Vec<Arc<dyn Processor>> = vec![
        Arc::new(crate::normalize::Normalize::default()),
        Arc::new(crate::alerts::Alerts::new(cfg.alerts.clone())),
    ];
    for p in crate::sql::load(cfg)? {
        all.push(Arc::new(p));
    }
    let mut names = std::collections::HashSet::new();
    for p in &all {
        anyhow::ensure!(
            names.insert(p.name().to_owned()),
            "two processors are named {}",
            p.name()
        );
    }
    Ok(all)
}

/// `muster process`: every registered processor (or `cfg.only`).
pub fn spawn(env: &Env, cfg: ProcessorsConfig) -> Workers {
    let env = env.clone();
    Workers::one("process", async move { run(&env, cfg).await })
}

async fn run(env: &Env, cfg: ProcessorsConfig) -> anyhow::Result<()> {
    let mut selected = registry(&cfg)?;
    if !cfg.only.is_empty() {
        for name in &cfg.only {
            anyhow::ensure!(
                selected.iter().any(|p| p.name() == name),
                "processors.only names {name:?}, which is not a registered processor (see `muster process --list`)"
            );
        }
        selected.retain(|p| cfg.only.iter().any(|n| n == p.name()));
    }
    let mut topics = vec![DeadLetter::TOPIC.to_owned()];
    for p in &selected {
        topics.extend(p.inputs());
        topics.extend(p.outputs());
    }
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    muster_runtime::topics::ensure(&env.kafka, &topics).await?;
    let state: Vec<String> = selected.iter().flat_map(|p| p.state_topics()).collect();
    let state: Vec<&str> = state.iter().map(String::as_str).collect();
    muster_runtime::topics::ensure_compacted(&env.kafka, &state).await?;
    muster_runtime::topics::register::<DeadLetter>(&env.codec).await?;
    for p in &selected {
        p.register(&env.codec)
            .await
            .with_context(|| format!("processor {}: registering its output schemas", p.name()))?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for p in selected {
        let (cfg, env) = (cfg.clone(), env.clone());
        tasks.spawn(async move {
            let part = format!("processors.{}", p.name());
            // One transactional id and group member for every session (see
            // `TransactionalLoop::new`).
            let instance = muster_runtime::unique_suffix();
            // Failures restart it from the last committed offsets.
            Supervisor {
                part: &part,
                // A failed commit (a session lost to a broker restart, a fenced producer) is
                // retried at once with new clients; a dependency that stays down backs off.
                backoff: Backoff::doubling(),
                counter: Some((
                    "muster_processor_restarts_total",
                    "processor",
                    p.name().to_owned(),
                )),
            }
            .run(&env.health, &env.shutdown, || {
                run_clients(&p, &instance, &cfg, &env, &part)
            })
            .await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a processor panicked")?;
    }
    Ok(())
}

async fn run_clients(
    p: &Arc<dyn Processor>,
    instance: &str,
    cfg: &ProcessorsConfig,
    env: &Env,
    part: &str,
) -> anyhow::Result<()> {
    let group = format!("processors.{}", p.name());
    let tx = TransactionalLoop::new(&env.kafka, &group, instance, &p.inputs(), cfg.clone())?;
    env.health.ready(part);
    let result = batches(p, &env.kafka, &env.codec, &env.shutdown, &tx).await;
    // Never leave a commit running behind a restart: the next clients would read the offsets
    // it has not added yet, and process its batch a second time.
    let flushed = tx.flush().await;
    result.and(flushed)
}

/// Reads, processes and commits batches until shutdown; each commit runs while the next batch
/// is read and processed.
async fn batches(
    p: &Arc<dyn Processor>,
    kafka: &KafkaConfig,
    codec: &Codec,
    shutdown: &Shutdown,
    tx: &TransactionalLoop,
) -> anyhow::Result<()> {
    let name = p.name().to_owned();
    let mut restored_at = None;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = tx.next_batch(Duration::from_secs(1)) => b?,
        };
        if batch.is_empty() {
            // Idle: surface the last commit's outcome now rather than with the next batch.
            tx.flush().await?;
            continue;
        }
        let started = std::time::Instant::now();
        if restored_at != Some(tx.assignments()) {
            // State must include the commit in flight before it is read back.
            tx.flush().await?;
            restored_at = Some(tx.assignments());
            p.restore(kafka, codec)
                .await
                .with_context(|| format!("processor {name}: restoring its state"))?;
        }
        let outputs = p.process(&batch, codec).await?;
        let n_out = outputs.len();
        tx.commit(&batch, outputs).await?;
        metrics::counter!("muster_processor_records_in_total", "processor" => name.clone())
            .increment(batch.len() as u64);
        metrics::counter!("muster_processor_records_out_total", "processor" => name.clone())
            .increment(n_out as u64);
        metrics::histogram!("muster_processor_batch_seconds", "processor" => name.clone())
            .record(started.elapsed().as_secs_f64());
    }
}
