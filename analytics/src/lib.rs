//! SQL for analysts: DataFusion over the projections (read from PostgreSQL in read-only
//! transactions) and the Parquet raw archive. Queries only read: DDL, DML and statements are
//! refused before planning; a time limit and a row limit bound every query.

pub mod flight;
pub mod insights;
pub mod pg;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{DataFrame, ParquetReadOptions};

/// What a query may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("only queries that read are allowed: {0}")]
    NotReadOnly(String),
    #[error("the query ran longer than its {0:?} limit and was stopped")]
    Timeout(Duration),
    #[error("{0}")]
    Sql(datafusion::error::DataFusionError),
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// A query's answer: at most `max_rows` rows, and whether there were more.
#[derive(Debug)]
pub struct Answer {
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
/// tables without an `event_id` are left out, and so is the archive).
pub async fn projections(
    pool: &deadpool_postgres::Pool,
    events: Option<Vec<String>>,
) -> anyhow::Result<SessionContext> {
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_information_schema(true),
    );
    let mut tables: Vec<&str> = muster_projections::registry()
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    tables.extend(insights::store::TABLES);
    tables.sort();
    tables.dedup();
    let events = events.map(Arc::new);
    for table in tables {
        let Some(t) = pg::PgTable::open(pool.clone(), table).await? else {
            continue;
        };
        let t = match &events {
            Some(e) => match t.scoped(e.clone()) {
                Some(t) => t,
                None => continue,
            },
            None => t,
        };
        ctx.register_table(table, Arc::new(t))?;
    }
    Ok(ctx)
}

/// Registers the archive at `url` as `archive_snapshots`, `archive_checkins` and
/// `archive_normalized` (those with files), partitioned by `date` and `event`.
pub async fn register_archive(ctx: &SessionContext, url: &str) -> anyhow::Result<()> {
    {
        let mut root = muster_projections::archive::store::parse(url)?;
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
        for (name, topic) in [
            ("archive_snapshots", muster_projections::archive::TOPICS[0]),
            ("archive_checkins", muster_projections::archive::TOPICS[1]),
            ("archive_normalized", muster_projections::archive::TOPICS[2]),
        ] {
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
    let batches = tokio::time::timeout(limits.timeout, df.collect())
        .await
        .map_err(|_| QueryError::Timeout(limits.timeout))?
        .map_err(QueryError::Sql)?;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let truncated = total > limits.max_rows;
    let mut left = limits.max_rows;
    let mut kept = Vec::with_capacity(batches.len());
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        kept.push(b.slice(0, take));
        left -= take;
    }
    Ok(Answer {
        rows: total.min(limits.max_rows),
        batches: kept,
        truncated,
    })
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
        DfStatement::Statement(s) => {
            matches!(**s, Statement::Query(_))
                || s.to_string().to_ascii_uppercase().starts_with("SHOW ")
        }
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
    let mut buf = Vec::new();
    {
        let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    buf.split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| Ok(serde_json::from_slice(l)?))
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

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "parquet" => Ok(Self::Parquet),
            _ => Err(format!("{s:?} is not one of table, csv, json, parquet")),
        }
    }
}

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
            for b in &answer.batches {
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
            let Some(first) = answer.batches.first() else {
                anyhow::bail!("no rows to write as Parquet");
            };
            let mut w = parquet::arrow::ArrowWriter::try_new(out, first.schema(), None)?;
            for b in &answer.batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_and_ddl_are_refused_and_runaways_stopped() {
        let ctx = SessionContext::new();
        let limits = Limits {
            timeout: Duration::from_millis(300),
            max_rows: 3,
        };
        for sql in [
            "CREATE TABLE t AS SELECT 1",
            "DROP TABLE x",
            "INSERT INTO t VALUES (1)",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; DROP TABLE x",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
        ] {
            assert!(
                matches!(
                    query(&ctx, sql, &limits).await,
                    Err(QueryError::NotReadOnly(_))
                ),
                "{sql}"
            );
        }
        let a = query(&ctx, "SELECT * FROM range(10)", &limits)
            .await
            .unwrap();
        assert_eq!((a.rows, a.truncated), (3, true));
        let slow = "SELECT count(*) FROM range(100000000) a, range(100000000) b";
        assert!(matches!(
            query(&ctx, slow, &limits).await,
            Err(QueryError::Timeout(_))
        ));
    }
}
