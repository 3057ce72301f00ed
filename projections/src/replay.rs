//! `muster replay <projection>`: rebuilds a projection from the start of its topics into a
//! fresh schema while the live tables keep serving, then swaps the new tables in, in one
//! transaction that also hands the replay's offsets to the live worker.
//!
//! The swap happens only once the replay has applied every record the live projection had
//! (its consumer position is at or past the live stored offsets on every partition), with the
//! live offsets locked, so the live worker cannot apply anything in between. Before swapping,
//! the two versions are compared row by row and the differences reported. The swap records
//! the events whose rows differed in the change log, so live readers re-read them.
//!
//! The rebuild is written for speed, since it is verified before it serves: its tables get
//! their secondary indexes only once it has caught up, and its batches commit without
//! waiting for the WAL to reach the disk (`synchronous_commit = off`; a crash loses a batch
//! and its offsets together, and the replay starts over anyway).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::KafkaConfig;
use muster_runtime::batch::{BatchBounds, gather};
use muster_schemas::Codec;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::ProjectionsConfig;
use muster_runtime::projection::{Applier, Projection, changes, offsets};

/// Where a replay is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    /// Records between the start of the topics and their ends when the replay began.
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub records: u64,
    pub elapsed: Duration,
    /// Rows that differ between the rebuilt and the live tables at the swap, per table (in
    /// either direction; 0 everywhere means identical).
    pub differences: Vec<(String, i64)>,
    pub swapped: bool,
}

pub struct Replay<'a> {
    pub projection: &'a dyn Projection,
    pub kafka: &'a KafkaConfig,
    pub codec: &'a Codec,
    pub pool: &'a deadpool_postgres::Pool,
    pub cfg: &'a ProjectionsConfig,
    pub mode: Mode,
    /// Swap even when a topic no longer starts at offset 0 (its oldest records were deleted by
    /// retention): the rebuilt tables then lack what only the live ones still hold.
    pub accept_truncated: bool,
    /// Read these topics instead of the projection's own (benchmarks use copies).
    pub topics: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compare, then swap the rebuilt tables in.
    Swap,
    /// Compare and report, but keep the live tables (and drop the rebuilt ones).
    DryRun,
    /// Neither compare nor swap: only the rebuild's throughput matters (benchmarks).
    Discard,
}

impl Replay<'_> {
    /// Benchmarks rebuild elsewhere, so they never collide with a real replay.
    fn schema(&self) -> String {
        match self.mode {
            Mode::Discard => format!("bench_replay_{}", self.projection.name()),
            _ => format!("replay_{}", self.projection.name()),
        }
    }

    fn offsets_key(&self) -> String {
        match self.mode {
            Mode::Discard => format!("bench-replay:{}", self.projection.name()),
            _ => format!("replay:{}", self.projection.name()),
        }
    }

    pub async fn run(&self, mut progress: impl FnMut(Progress)) -> anyhow::Result<ReplayReport> {
        let started = Instant::now();
        let name = self.projection.name();
        let schema = self.schema();
        let key = self.offsets_key();
        let mut indexes = Some(self.prepare(&schema, &key).await?);

        let consumer: StreamConsumer = self
            .kafka
            .client()
            .set(
                "group.id",
                self.kafka.group(&format!(
                    "replay.{name}.{}",
                    muster_runtime::unique_suffix()
                )),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .context("creating the replay consumer")?;
        let mut tpl = TopicPartitionList::new();
        let mut total = 0u64;
        let mut partitions = Vec::new();
        let mut lows = BTreeMap::new();
        let bases: Vec<&str> = match &self.topics {
            Some(t) => t.iter().map(String::as_str).collect(),
            None => self.projection.topics(),
        };
        let topics: Vec<String> = bases.iter().map(|t| self.kafka.topics().name(t)).collect();
        for topic in topics.iter().map(String::as_str) {
            let meta = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .with_context(|| format!("reading the metadata of {topic}"))?;
            for t in meta.topics() {
                for p in t.partitions() {
                    let (low, high) = consumer
                        .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                        .with_context(|| format!("reading the offsets of {topic}/{}", p.id()))?;
                    total += (high - low).max(0) as u64;
                    tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                    partitions.push((topic.to_owned(), p.id()));
                    lows.insert((topic.to_owned(), p.id()), low);
                }
            }
        }
        let truncated: Vec<String> = lows
            .iter()
            .filter(|(_, low)| **low > 0)
            .map(|((t, p), low)| format!("{t}/{p} starts at {low}"))
            .collect();
        if !truncated.is_empty() && self.mode == Mode::Swap && !self.accept_truncated {
            anyhow::bail!(
                "not rebuilding {name}: its topics lost their oldest records to retention ({}), so a rebuild would drop history the live tables still hold. Use --dry-run to compare, or --accept-truncated to swap anyway",
                truncated.join(", ")
            );
        }
        consumer.assign(&tpl).context("assigning the topics")?;

        let applier = Applier {
            projection: self.projection,
            codec: self.codec,
            offsets_key: &key,
            schema: &schema,
            announce: false,
            durable: false,
        };
        let bounds = BatchBounds {
            max_records: self.cfg.batch_max_records.max(5000),
            max_wait: Duration::from_millis(500),
            idle: Duration::from_secs(2),
            ..BatchBounds::default()
        };
        let mut done = 0u64;
        progress(Progress { done, total });
        loop {
            // Read up to the ends the topics have now, then try to swap.
            let mut targets = BTreeMap::new();
            for (topic, p) in &partitions {
                let (_, high) = consumer
                    .fetch_watermarks(topic, *p, Duration::from_secs(10))
                    .with_context(|| format!("reading the offsets of {topic}/{p}"))?;
                targets.insert((topic.clone(), *p), high);
            }
            loop {
                let position = positions(&consumer, &lows)?;
                if targets.iter().all(|(k, high)| position[k] >= *high) {
                    break;
                }
                let batch = gather(&consumer, bounds, |_, _| true).await?;
                if !batch.is_empty() {
                    done += batch.len() as u64;
                    applier.apply(self.pool, batch).await?;
                    progress(Progress {
                        done,
                        total: total.max(done),
                    });
                }
            }
            if let Some(defs) = indexes.take() {
                self.create_indexes(&schema, &defs).await?;
            }
            if self.mode == Mode::DryRun {
                let differences = self
                    .compare_at_live(&consumer, &applier, bounds, &lows, &schema, &key)
                    .await?;
                self.discard(&schema, &key).await?;
                return Ok(ReplayReport {
                    records: done,
                    elapsed: started.elapsed(),
                    differences,
                    swapped: false,
                });
            }
            let position = positions(&consumer, &lows)?;
            if self.mode == Mode::Discard {
                self.discard(&schema, &key).await?;
                return Ok(ReplayReport {
                    records: done,
                    elapsed: started.elapsed(),
                    differences: Vec::new(),
                    swapped: false,
                });
            }
            if let Some(report) = self.try_swap(&schema, &key, &position).await? {
                return Ok(ReplayReport {
                    records: done,
                    elapsed: started.elapsed(),
                    ..report
                });
            }
            tracing::info!(
                projection = name,
                "the live projection moved on; catching up"
            );
        }
    }

    async fn discard(&self, schema: &str, key: &str) -> anyhow::Result<()> {
        let client = self.pool.get().await.context("connecting to PostgreSQL")?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
        client
            .execute(
                "DELETE FROM projection_offsets WHERE projection = $1",
                &[&key],
            )
            .await?;
        Ok(())
    }

    /// A fresh schema with the projection's tables, and no stored offsets under `key`. The
    /// tables are built without their secondary indexes: maintaining them row by row costs
    /// more than building them once from the whole table. Returns their definitions, for
    /// [`Self::create_indexes`]. Unique indexes stay (they decide the merges' conflicts).
    async fn prepare(&self, schema: &str, key: &str) -> anyhow::Result<Vec<String>> {
        self.discard(schema, key).await?;
        let client = self.pool.get().await.context("connecting to PostgreSQL")?;
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .with_context(|| format!("creating schema {schema}"))?;
        for step in crate::steps(self.projection, schema) {
            client
                .batch_execute(&step)
                .await
                .with_context(|| format!("creating the tables in {schema}"))?;
        }
        let secondary = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND NOT i.indisunique
                 ORDER BY c.relname",
                &[&schema],
            )
            .await
            .with_context(|| format!("reading the indexes in {schema}"))?;
        let mut defs = Vec::with_capacity(secondary.len());
        for row in secondary {
            let index: &str = row.get(0);
            client
                .batch_execute(&format!("DROP INDEX {index}"))
                .await
                .with_context(|| format!("dropping {index} until the rebuild is done"))?;
            defs.push(row.get(1));
        }
        Ok(defs)
    }

    /// Builds the indexes [`Self::prepare`] left out, once the rebuild has caught up, before
    /// it is compared or swapped in (so the tables swapped in are whole).
    async fn create_indexes(&self, schema: &str, defs: &[String]) -> anyhow::Result<()> {
        if defs.is_empty() {
            return Ok(());
        }
        let mut client = self.pool.get().await.context("connecting to PostgreSQL")?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")
            .await?;
        for def in defs {
            tx.batch_execute(def)
                .await
                .with_context(|| format!("indexing the rebuilt tables in {schema}: {def}"))?;
        }
        tx.commit().await.context("committing the indexes")?;
        Ok(())
    }

    /// Swaps if the replay is at or past the live offsets everywhere; `None` if it is behind.
    async fn try_swap(
        &self,
        schema: &str,
        key: &str,
        position: &BTreeMap<(String, i32), i64>,
    ) -> anyhow::Result<Option<ReplayReport>> {
        let name = self.projection.name();
        let mut client = self.pool.get().await.context("connecting to PostgreSQL")?;
        let tx = client.transaction().await?;
        for ((topic, p), next) in offsets::locked(&tx, name).await? {
            let at = position.get(&(topic.clone(), p)).copied().unwrap_or(0);
            if at < next {
                tracing::info!(%topic, partition = p, replay = at, live = next, "replay behind the live projection");
                return Ok(None);
            }
        }
        let (differences, touched) = self.compare(&tx, schema).await?;
        for table in self.projection.tables() {
            // The rebuilt table replaces the live one, so it gets the live one's privileges
            // (e.g. the BI role's SELECT, scripts/bi-role.sql), or readers would lose it.
            let grants = tx
                .query(
                    "SELECT format('GRANT %s ON %I.%I TO %s%s', a.privilege_type, $2::text,
                            c.relname,
                            CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
                            CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                     FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
                     LEFT JOIN pg_roles r ON r.oid = a.grantee
                     WHERE c.oid = to_regclass('public.' || quote_ident($1::text))
                       AND a.grantee <> c.relowner",
                    &[table, &schema],
                )
                .await
                .with_context(|| format!("reading the privileges on {table}"))?;
            for grant in grants {
                tx.batch_execute(grant.get::<_, &str>(0))
                    .await
                    .with_context(|| format!("copying the privileges on {table}"))?;
            }
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS public.{table}; ALTER TABLE {schema}.{table} SET SCHEMA public"
            ))
            .await
            .with_context(|| format!("swapping {table}"))?;
        }
        // The live worker continues from the replay's offsets (never behind its own).
        tx.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)
             SELECT $1, topic, partition, next_offset FROM projection_offsets WHERE projection = $2
             ON CONFLICT (projection, topic, partition) DO UPDATE
                SET next_offset = greatest(projection_offsets.next_offset, excluded.next_offset),
                    updated_at = now()",
            &[&name, &key],
        )
        .await?;
        tx.execute(
            "DELETE FROM projection_offsets WHERE projection = $1",
            &[&key],
        )
        .await?;
        tx.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
        // The rebuild's own batches announced nothing (no reader saw its tables); the swap
        // announces every event whose rows it changed, last before the commit.
        if let Some(kind) = self.projection.announces() {
            changes::record(&tx, kind, touched.iter().map(String::as_str))
                .await
                .context("recording the swap in the change log")?;
        }
        tx.commit().await.context("committing the swap")?;
        Ok(Some(ReplayReport {
            records: 0,
            elapsed: Duration::ZERO,
            differences,
            swapped: true,
        }))
    }

    /// Rows that differ between the rebuilt and the live tables, per table, and the events
    /// they belong to.
    async fn compare(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        schema: &str,
    ) -> anyhow::Result<(Vec<(String, i64)>, BTreeSet<String>)> {
        let mut differences = Vec::new();
        // The events of tables that differ: what readers see of them changes at the swap.
        let mut touched = BTreeSet::new();
        for table in self.projection.tables() {
            // Sums of floats depend on the order they were added in (batches differ between
            // the live run and the replay), so floats are compared to 9 decimals. Identity
            // columns number rows, they say nothing of them: aborted transactions leave gaps
            // in the live numbering, so every later row differed.
            let cols: Vec<String> = tx
                .query(
                    "SELECT column_name, data_type FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name = $1
                       AND column_name <> 'updated_at' AND is_identity = 'NO'
                     ORDER BY ordinal_position",
                    &[table],
                )
                .await?
                .iter()
                .map(|r| {
                    let (name, ty): (String, String) = (r.get(0), r.get(1));
                    if ty == "double precision" {
                        format!("round(\"{name}\"::numeric, 9)")
                    } else {
                        format!("\"{name}\"")
                    }
                })
                .collect();
            let cols = cols.join(", ");
            let n: i64 = tx
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM (SELECT {cols} FROM {schema}.{table}
                                  EXCEPT ALL SELECT {cols} FROM public.{table}) a)
                              + (SELECT count(*) FROM (SELECT {cols} FROM public.{table}
                                  EXCEPT ALL SELECT {cols} FROM {schema}.{table}) b)"
                    ),
                    &[],
                )
                .await
                .with_context(|| format!("comparing {table}"))?
                .get(0);
            differences.push(((*table).to_owned(), n));
            if n > 0 {
                // Every table a projection announces for has an event id.
                for row in tx
                    .query(
                        &format!(
                            "SELECT event_id FROM {schema}.{table}
                             UNION SELECT event_id FROM public.{table}"
                        ),
                        &[],
                    )
                    .await
                    .with_context(|| format!("listing the events of {table}"))?
                {
                    touched.insert(row.get::<_, String>(0));
                }
            }
        }
        Ok((differences, touched))
    }

    /// A dry run's comparison, at exactly the live offsets: those locked (the live worker
    /// waits), the rebuild brought to them. Compared while either was ahead of the other, the
    /// records only one had applied showed as differences under load. A rebuild ahead of the
    /// live projection waits for it to pass.
    async fn compare_at_live(
        &self,
        consumer: &StreamConsumer,
        applier: &Applier<'_>,
        bounds: BatchBounds,
        lows: &BTreeMap<(String, i32), i64>,
        schema: &str,
        key: &str,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        let name = self.projection.name();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut client = self.pool.get().await.context("connecting to PostgreSQL")?;
            let tx = client.transaction().await?;
            let live = offsets::locked(&tx, name).await?;
            let replayed = offsets::all(&*self.pool.get().await?, key).await?;
            if replayed
                .iter()
                .any(|(k, n)| live.get(k).is_none_or(|l| n > l))
            {
                drop(tx);
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the live projection {name} did not reach the rebuild's offsets in 60 s: is it running?"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            loop {
                let position = positions(consumer, lows)?;
                if live
                    .iter()
                    .all(|(k, n)| position.get(k).is_none_or(|at| at >= n))
                {
                    break;
                }
                let batch = gather(consumer, bounds, |_, r| {
                    live.get(&(r.topic.clone(), r.partition))
                        .is_some_and(|n| r.offset < *n)
                })
                .await?;
                if !batch.is_empty() {
                    applier.apply(self.pool, batch).await?;
                }
            }
            let (differences, _) = self.compare(&tx, schema).await?;
            tx.rollback().await?;
            return Ok(differences);
        }
    }
}

/// Where the consumer is on each partition; a partition not fetched yet is at its start.
fn positions(
    consumer: &StreamConsumer,
    lows: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let position = consumer.position()?;
    Ok(lows
        .iter()
        .map(|((topic, p), low)| {
            let at = match position.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => *low,
            };
            ((topic.clone(), *p), at)
        })
        .collect())
}
