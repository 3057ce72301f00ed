//! SQL for analysts: DataFusion over the projections (read from PostgreSQL in read-only
//! transactions, streamed in batches) and the Parquet raw archive. Queries only read: DDL, DML
//! and statements are refused before planning; every query runs within a time limit, a row
//! limit, a cap on its answer's bytes and a memory pool of its own.

pub mod flight;
pub mod insights;
pub mod pg;
mod read_only;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryPool, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, ParquetReadOptions};
use futures::StreamExt;

/// What a query may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
    /// Bytes of the answer (its Arrow arrays, as held in memory); a larger answer is refused,
    /// not cut, since bytes have no order to cut by.
    pub max_bytes: usize,
    /// Memory of one query: its operators' working memory and its answer. Sorts, aggregations
    /// and joins spill to disk past it where DataFusion can; anything else is refused.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            max_bytes: 64 << 20,
            memory: 512 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("only queries that read are allowed: {0}")]
    NotReadOnly(String),
    #[error("the query ran longer than its {0:?} limit and was stopped")]
    Timeout(Duration),
    #[error("the answer is larger than the limit of {limit} bytes: select fewer columns or rows")]
    TooLarge { limit: usize },
    #[error(
        "the query needs more memory than its limit of {limit} bytes and was stopped: {detail}"
    )]
    Memory { limit: usize, detail: String },
    #[error("this key already runs {0} queries at once, its limit: wait for one to finish")]
    Busy(usize),
    #[error("{0}")]
    Sql(DataFusionError),
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

impl QueryError {
    /// A DataFusion error as the caller should hear it: a memory pool's refusal or a failure
    /// of PostgreSQL is not an error in the query.
    fn from_datafusion(e: DataFusionError, limits: &Limits) -> Self {
        if let DataFusionError::ResourcesExhausted(detail) = e.find_root() {
            return Self::Memory {
                limit: limits.memory,
                detail: detail.clone(),
            };
        }
        let backend = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .any(|e| e.is::<pg::Backend>());
        if backend {
            Self::Setup(anyhow::anyhow!("{e}"))
        } else {
            Self::Sql(e)
        }
    }
}

/// How many queries each key may run at once (a partner key, the admin token), shared by every
/// path a query comes in through.
#[derive(Debug, Clone)]
pub struct Slots {
    per_key: usize,
    keys: Arc<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>>,
}

/// A query's slot, given back when dropped.
pub type Slot = tokio::sync::OwnedSemaphorePermit;

impl Slots {
    pub fn new(per_key: usize) -> Self {
        Self {
            per_key: per_key.max(1),
            keys: Default::default(),
        }
    }

    /// A slot for `key` now, or [`QueryError::Busy`]: a caller past its limit is refused at
    /// once rather than queued, so that waiting queries hold nothing.
    pub fn try_acquire(&self, key: &str) -> Result<Slot, QueryError> {
        let semaphore = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            // Keys with no query running are forgotten, so the map holds running keys only.
            keys.retain(|_, s| s.available_permits() < self.per_key);
            keys.entry(key.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_key)))
                .clone()
        };
        semaphore
            .try_acquire_owned()
            .map_err(|_| QueryError::Busy(self.per_key))
    }
}

/// A query's answer: at most `max_rows` rows, and whether there were more.
#[derive(Debug)]
pub struct Answer {
    /// The answer's columns, also when it has no rows.
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub truncated: bool,
}

/// The tables analysts see: every projection's, and the archived topics as
/// `archive_snapshots`, `archive_checkins`, `archive_normalized` when an archive is set.
pub async fn context(
    pool: &deadpool_postgres::Pool,
    archive_url: Option<&str>,
) -> anyhow::Result<SessionContext> {
    let ctx = projections(pool, None).await?;
    if let Some(url) = archive_url {
        register_archive(&ctx, url).await?;
    }
    Ok(ctx)
}

/// The projections only, each restricted to rows of `events` when given (a partner's view:
/// tables without an `event_id` are left out, and so is the archive, and columns naming other
/// events are read redacted as the HTTP routes show them, see
/// [`insights::tables::PARTNER_REDACTIONS`]).
pub async fn projections(
    pool: &deadpool_postgres::Pool,
    events: Option<Vec<String>>,
) -> anyhow::Result<SessionContext> {
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_information_schema(true),
    );
    let declared = declared_tables(pool).await?;
    let mut tables: Vec<&str> = muster_schemas::read_models::TABLES.to_vec();
    tables.extend(insights::tables::TABLES);
    tables.extend(declared.iter().map(String::as_str));
    tables.sort();
    tables.dedup();
    let events = events.map(Arc::new);
    for table in tables {
        let Some(t) = pg::PgTable::open(pool.clone(), table).await? else {
            continue;
        };
        let t = match &events {
            Some(e) => match t.scoped(e.clone()) {
                Some(t) => insights::tables::PARTNER_REDACTIONS
                    .iter()
                    .filter(|(name, ..)| *name == table)
                    .fold(t, |t, (_, column, sql)| t.redacted(column, sql)),
                None => continue,
            },
            None => t,
        };
        ctx.register_table(table, Arc::new(t))?;
    }
    Ok(ctx)
}

/// The tables SQL processors declare (`-- table:`), from their catalogue: read models known
/// only at run time. Their key holds `event_id`, so partners' views are scoped like the others.
async fn declared_tables(pool: &deadpool_postgres::Pool) -> anyhow::Result<Vec<String>> {
    let client = pool.get().await.context("connecting to PostgreSQL")?;
    let catalogue = muster_schemas::read_models::DECLARED_CATALOGUE;
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&catalogue])
        .await
        .context("looking for the declared tables")?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query(&format!("SELECT name FROM {catalogue} ORDER BY name"), &[])
        .await
        .context("listing the declared tables")?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Every table `ctx` lets a query name (its default catalog and schema), with its columns,
/// by name: what an analyst may ask about.
pub async fn tables(
    ctx: &SessionContext,
) -> anyhow::Result<Vec<(String, datafusion::arrow::datatypes::SchemaRef)>> {
    let options = ctx.copied_config();
    let defaults = &options.options().catalog;
    let schema = ctx
        .catalog(&defaults.default_catalog)
        .and_then(|c| c.schema(&defaults.default_schema))
        .ok_or_else(|| anyhow::anyhow!("the session has no default schema"))?;
    let mut names = schema.table_names();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(table) = schema.table(&name).await? {
            out.push((name, table.schema()));
        }
    }
    Ok(out)
}

/// Registers the archive at `url` as `archive_snapshots`, `archive_checkins` and
/// `archive_normalized` (those with files), partitioned by `date` and `event`.
pub async fn register_archive(ctx: &SessionContext, url: &str) -> anyhow::Result<()> {
    {
        let mut root = muster_schemas::archive::parse_url(url).map_err(anyhow::Error::msg)?;
        // A folder: `file:///data/archive` must not lose `archive` when a topic is joined.
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        if root.scheme() != "file" {
            anyhow::bail!(
                "SQL over an archive at {root} is not supported yet: only local (file://) archives"
            );
        }
        for (name, topic) in muster_schemas::archive::TABLES {
            let dir = root.join(&format!("{topic}/"))?;
            let exists = dir.to_file_path().map(|p| p.is_dir()).unwrap_or(false);
            if !exists {
                continue;
            }
            let options = ParquetReadOptions::default().table_partition_cols(vec![
                ("date".to_owned(), DataType::Utf8),
                ("event".to_owned(), DataType::Utf8),
            ]);
            ctx.register_parquet(name, dir.as_str(), options).await?;
        }
    }
    Ok(())
}

/// Runs one read-only statement within `limits`.
pub async fn query(ctx: &SessionContext, sql: &str, limits: &Limits) -> Result<Answer, QueryError> {
    execute(plan(ctx, sql).await?, limits).await
}

/// Plans one read-only statement: refused before planning unless it reads, then planned under
/// options that refuse DDL, DML and statements. The plan's schema is the answer's.
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    check_read_only(sql)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        // DataFusion's own refusals under these options (SessionContext::verify_plan).
        if [
            "DDL not supported",
            "DML not supported",
            "Statement not supported",
        ]
        .iter()
        .any(|m| text.contains(m))
        {
            QueryError::NotReadOnly(text)
        } else {
            QueryError::Sql(e)
        }
    })
}

/// Runs a plan of [`plan`] within `limits`.
pub async fn execute(df: DataFrame, limits: &Limits) -> Result<Answer, QueryError> {
    let df = df
        .limit(0, Some(limits.max_rows + 1))
        .map_err(QueryError::Sql)?;
    tokio::time::timeout(limits.timeout, collect(df, limits))
        .await
        .map_err(|_| QueryError::Timeout(limits.timeout))?
}

/// Executes `df` in a memory pool of its own (sharing the session's disk manager to spill to)
/// and collects at most `max_rows` rows, counting the answer against the pool and the byte cap.
async fn collect(df: DataFrame, limits: &Limits) -> Result<Answer, QueryError> {
    let fail = |e| QueryError::from_datafusion(e, limits);
    let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
        FairSpillPool::new(limits.memory),
        NonZeroUsize::new(3).expect("3 > 0"),
    ));
    let (state, plan) = df.into_parts();
    let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
        .with_memory_pool(pool.clone())
        .build_arc()
        .map_err(fail)?;
    let plan = state.create_physical_plan(&plan).await.map_err(fail)?;
    let schema = plan.schema();
    // A sort sets this much aside to merge what it spilled (10 MB by default): within a
    // small pool, a smaller share, so that sorts spill rather than fail.
    let mut config = state.config().clone();
    let merge = &mut config.options_mut().execution.sort_spill_reservation_bytes;
    *merge = (*merge).min(limits.memory / 8);
    let task = Arc::new(
        TaskContext::from(&state)
            .with_session_config(config)
            .with_runtime(runtime),
    );
    let mut stream = datafusion::physical_plan::execute_stream(plan, task).map_err(fail)?;
    let held = MemoryConsumer::new("answer").register(&pool);
    let (mut batches, mut rows, mut bytes, mut truncated) = (Vec::new(), 0, 0, false);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(fail)?;
        let take = batch.num_rows().min(limits.max_rows - rows);
        if take < batch.num_rows() {
            truncated = true;
        }
        if take > 0 {
            let batch = batch.slice(0, take);
            let size = answer_bytes(&batch);
            bytes += size;
            if bytes > limits.max_bytes {
                return Err(QueryError::TooLarge {
                    limit: limits.max_bytes,
                });
            }
            held.try_grow(size).map_err(fail)?;
            rows += take;
            batches.push(batch);
        }
        if truncated {
            break;
        }
    }
    Ok(Answer {
        schema,
        batches,
        rows,
        truncated,
    })
}

/// The bytes `batch` holds for its rows (a slice counts its rows, not the arrays it shares).
fn answer_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|a| {
            a.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| a.get_array_memory_size())
        })
        .sum()
}

/// One statement, and one that reads: a query (`SELECT`, `WITH`, `VALUES`) or a `SHOW`. Checked
/// on the parsed statement before planning, so a write is refused even when it names a table
/// that does not exist; DataFusion's own options then refuse any write a plan still holds.
pub fn check_read_only(sql: &str) -> Result<(), QueryError> {
    use datafusion::sql::parser::{DFParser, Statement as DfStatement};
    use datafusion::sql::sqlparser::ast::Statement;
    let statements = DFParser::parse_sql(sql)
        .map_err(|e| QueryError::Sql(datafusion::error::DataFusionError::External(Box::new(e))))?;
    if statements.len() != 1 {
        return Err(QueryError::NotReadOnly(format!(
            "one statement at a time ({} given)",
            statements.len()
        )));
    }
    let ok = match &statements[0] {
        DfStatement::Statement(s) => match &**s {
            Statement::Query(_) => !read_only::selects_into(s),
            s => s.to_string().to_ascii_uppercase().starts_with("SHOW "),
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let text = statements[0].to_string();
        let head: String = text.chars().take(60).collect();
        Err(QueryError::NotReadOnly(head))
    }
}

/// Rows as JSON objects keyed by column (timestamps as RFC 3339 strings).
pub fn to_json_rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<serde_json::Value>> {
    json_rows_within(batches, usize::MAX).map_err(|e| match e {
        QueryError::Setup(e) => e,
        other => anyhow::anyhow!(other),
    })
}

/// Like [`to_json_rows`], refused with [`QueryError::TooLarge`] once the rows' JSON text passes
/// `max_bytes` (JSON repeats each column's name in every row: it can be much larger than the
/// Arrow answer).
pub fn json_rows_within(
    batches: &[RecordBatch],
    max_bytes: usize,
) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| QueryError::Setup(e.into()))?;
            if w.get_ref().len() > max_bytes {
                return Err(QueryError::TooLarge { limit: max_bytes });
            }
        }
        w.finish().map_err(|e| QueryError::Setup(e.into()))?;
    }
    buf.split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| QueryError::Setup(e.into())))
        .collect()
}

/// How `muster sql` prints an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

muster_schemas::text_values!(Format {
    Table => "table",
    Csv => "csv",
    Json => "json",
    Parquet => "parquet",
});

/// Writes `answer` in `format` (Parquet is binary: give it a file, not a terminal).
pub fn write(
    answer: &Answer,
    format: Format,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&answer.batches)?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(out);
            // The header row also when no row matched.
            let empty = RecordBatch::new_empty(answer.schema.clone());
            for b in answer
                .batches
                .iter()
                .chain(answer.batches.is_empty().then_some(&empty))
            {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow_json::LineDelimitedWriter::new(out);
            for b in &answer.batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(out, answer.schema.clone(), None)?;
            for b in &answer.batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests;
