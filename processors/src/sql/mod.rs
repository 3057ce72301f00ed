//! SQL processors: one `.sql` file over a named input stream, run by DataFusion on each
//! micro-batch as an Arrow `RecordBatch`. The output Avro schema is derived from the query's
//! Arrow schema, so adding a processor is adding a file (see `processors/README.md`).
//!
//! A file starts with its metadata as comments:
//!
//! ```sql
//! -- name: gate_throughput_1m
//! -- description: entries and exits per gate per minute
//! -- input: checkins
//! -- output: muster.windows.gate-throughput-1m.v1
//! SELECT ...
//! ```
//!
//! It may also declare a table its partial rows merge into (`-- table:`, `-- key:`,
//! `-- merge:`, see [`table`]), which `muster project` then keeps.

mod avro;
pub mod golden;
mod streams;
pub mod table;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use include_dir::{Dir, include_dir};
use muster_schemas::{Codec, DeadLetter};

pub use streams::Stream;

use crate::config::ProcessorsConfig;
use crate::processor::{InRecord, OutRecord, Processor, dead_letter};

static BUILT_IN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/sql");

/// A parsed `.sql` file.
#[derive(Debug, Clone)]
pub struct SqlDefinition {
    pub name: String,
    pub description: String,
    pub input: Stream,
    pub output: &'static str,
    pub sql: String,
    pub origin: String,
    /// The `-- table:` lines, checked against the query when it is planned.
    pub table: Option<table::TableHeader>,
}

impl SqlDefinition {
    pub fn parse(origin: &str, text: &str) -> anyhow::Result<Self> {
        let mut meta = std::collections::HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("--") else {
                if line.trim().is_empty() {
                    continue;
                }
                break;
            };
            if let Some((k, v)) = rest.split_once(':') {
                meta.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{origin}: missing `-- {k}: ...` header"))
        };
        let name = get("name")?;
        anyhow::ensure!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{origin}: name {name:?} may only hold letters, digits and '_'"
        );
        let input: Stream = get("input")?
            .parse()
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let output = get("output")?;
        let versioned = output
            .rsplit_once(".v")
            .is_some_and(|(_, v)| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
        anyhow::ensure!(
            versioned,
            "{origin}: output topic {output:?} must carry a version suffix, e.g. muster.windows.x.v1"
        );
        Ok(Self {
            description: meta.get("description").cloned().unwrap_or_default(),
            name,
            input,
            output: Box::leak(output.into_boxed_str()),
            sql: text.to_owned(),
            origin: origin.to_owned(),
            table: table::TableHeader::parse(origin, text)?,
        })
    }
}

/// The built-in SQL processors and those in `processors.sql_dirs`.
pub fn load(cfg: &ProcessorsConfig) -> anyhow::Result<Vec<SqlProcessor>> {
    let mut defs = Vec::new();
    for f in BUILT_IN.files() {
        if f.path().extension().is_some_and(|e| e == "sql") {
            let text = f
                .contents_utf8()
                .context("a built-in SQL file is not UTF-8")?;
            defs.push(SqlDefinition::parse(
                &format!("processors/sql/{}", f.path().display()),
                text,
            )?);
        }
    }
    for dir in &cfg.sql_dirs {
        defs.extend(load_dir(dir)?);
    }
    defs.into_iter()
        .map(|d| SqlProcessor::new(d, cfg.allowed_lateness))
        .collect()
}

fn load_dir(dir: &Path) -> anyhow::Result<Vec<SqlDefinition>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("processors.sql_dirs: cannot read {}", dir.display()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.extension().is_some_and(|e| e == "sql") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.push(SqlDefinition::parse(&path.display().to_string(), &text)?);
        }
    }
    Ok(out)
}

pub struct SqlProcessor {
    pub def: SqlDefinition,
    ctx: SessionContext,
    output_schema: SchemaRef,
    avro_schema: String,
    table: Option<table::TableSpec>,
    allowed_lateness_ms: i64,
}

impl SqlProcessor {
    /// Plans the query once against the input stream's schema, which checks it and gives the
    /// output schema.
    pub fn new(def: SqlDefinition, allowed_lateness: std::time::Duration) -> anyhow::Result<Self> {
        let ctx = SessionContext::new();
        let output_schema = block_on(plan_schema(&ctx, &def))
            .with_context(|| format!("{}: the query does not plan", def.origin))?;
        let avro_schema = avro::schema_for(&def.name, &output_schema)
            .with_context(|| format!("{}: the output cannot be written as Avro", def.origin))?;
        let table = def
            .table
            .as_ref()
            .map(|h| h.resolve(&output_schema))
            .transpose()?;
        Ok(Self {
            def,
            ctx,
            output_schema,
            avro_schema,
            table,
            allowed_lateness_ms: allowed_lateness.as_millis() as i64,
        })
    }

    pub fn avro_schema(&self) -> &str {
        &self.avro_schema
    }

    /// The table the processor declares, checked against its query.
    pub fn table(&self) -> Option<&table::TableSpec> {
        self.table.as_ref()
    }

    pub fn output_arrow_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// Runs the query over one batch of the input stream.
    pub async fn query(&self, input: RecordBatch) -> anyhow::Result<Vec<RecordBatch>> {
        let table = self.def.input.table();
        let _ = self.ctx.deregister_table(table);
        self.ctx.register_batch(table, input)?;
        let out = self.ctx.sql(&self.def.sql).await?.collect().await;
        let _ = self.ctx.deregister_table(table);
        Ok(out?)
    }

    /// Query output rows as JSON objects with the Avro field names (golden files, tests).
    pub fn rows_as_json(&self, batches: &[RecordBatch]) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for b in batches {
            for row in 0..b.num_rows() {
                out.push(avro::row_json(b, row)?);
            }
        }
        Ok(out)
    }
}

async fn plan_schema(ctx: &SessionContext, def: &SqlDefinition) -> anyhow::Result<SchemaRef> {
    let table = def.input.table();
    ctx.register_batch(table, RecordBatch::new_empty(def.input.arrow_schema()))?;
    let df = ctx.sql(&def.sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    ctx.deregister_table(table)?;
    Ok(schema)
}

/// Planning is CPU-only; run it to completion on the current thread at load time.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
            .block_on(f),
    }
}

#[async_trait]
impl Processor for SqlProcessor {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn description(&self) -> String {
        format!(
            "{} → {}{} (SQL, {}){}",
            self.def.input.topic(),
            self.def.output,
            self.def
                .table
                .as_ref()
                .map(|t| format!(" → table {}", t.table()))
                .unwrap_or_default(),
            self.def.origin,
            if self.def.description.is_empty() {
                String::new()
            } else {
                format!(": {}", self.def.description)
            }
        )
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.def.input.topic().to_owned()]
    }

    fn outputs(&self) -> Vec<String> {
        vec![self.def.output.to_owned()]
    }

    async fn register(&self, codec: &Codec) -> anyhow::Result<()> {
        codec
            .register_schema(self.def.output, &self.avro_schema)
            .await?;
        Ok(())
    }

    async fn process(&self, batch: &[InRecord], codec: &Codec) -> anyhow::Result<Vec<OutRecord>> {
        let decoded = self
            .def
            .input
            .decode(codec, batch, self.allowed_lateness_ms)
            .await?;
        let mut out = Vec::new();
        for (record, reason, event_id) in decoded.rejected {
            let dl = DeadLetter::new(
                &format!("window:{}", self.def.name),
                reason,
                record.source(),
                event_id,
                record.payload.clone(),
            );
            out.push(dead_letter(codec, dl).await?);
        }
        if decoded.batch.num_rows() == 0 {
            return Ok(out);
        }
        for b in self.query(decoded.batch).await? {
            for row in 0..b.num_rows() {
                let (value, key) = avro::row_value(&b, row)?;
                out.push(OutRecord {
                    topic: codec.topics().name(self.def.output),
                    key,
                    payload: codec
                        .encode_value(self.def.output, &self.avro_schema, value)
                        .await?,
                });
            }
        }
        Ok(out)
    }
}
