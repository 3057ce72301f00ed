//! Projection tables as DataFusion tables. A scan reads from PostgreSQL only the columns the
//! query uses, only the rows its simple filters keep (comparisons with a literal, `IN` lists,
//! `IS NULL`, pushed down as parameterized SQL) and at most its limit, in one read-only
//! transaction, through a portal in batches of the session's batch size: a scan holds a few
//! batches at a time whatever the table's size.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// How a PostgreSQL column becomes an Arrow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Timestamp,
    Date,
    /// Anything else (jsonb, arrays, numeric, uuid…), read as its text form.
    AsText,
}

impl Kind {
    fn of(udt: &str) -> Self {
        match udt {
            "text" | "varchar" | "bpchar" | "name" => Self::Text,
            "int2" => Self::I16,
            "int4" => Self::I32,
            "int8" => Self::I64,
            "float4" => Self::F32,
            "float8" => Self::F64,
            "bool" => Self::Bool,
            "timestamptz" => Self::Timestamp,
            "date" => Self::Date,
            _ => Self::AsText,
        }
    }

    fn arrow(self) -> DataType {
        match self {
            Self::Text | Self::AsText => DataType::Utf8,
            Self::I16 => DataType::Int16,
            Self::I32 => DataType::Int32,
            Self::I64 => DataType::Int64,
            Self::F32 => DataType::Float32,
            Self::F64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Date => DataType::Date32,
        }
    }
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
    /// PostgreSQL's type name (`udt_name`).
    udt: String,
    /// What the view reads instead of the column itself (a redaction); never filtered on.
    read: Option<String>,
}

impl Column {
    fn quoted(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }

    /// How a filter on this column pushes down: `None` when PostgreSQL's comparison could keep
    /// other rows than DataFusion's (floats' signed zeros, `bpchar`'s padding, jsonb as text,
    /// collation order of text), `Some(false)` when it keeps at least DataFusion's rows (`name`
    /// truncates long literals).
    fn pushdown(&self, op: Operator) -> Option<bool> {
        if self.read.is_some() {
            return None;
        }
        match self.kind {
            Kind::I16 | Kind::I32 | Kind::I64 | Kind::Bool | Kind::Timestamp | Kind::Date => {
                Some(true)
            }
            Kind::Text if matches!(op, Operator::Eq | Operator::NotEq) => match self.udt.as_str() {
                "text" | "varchar" => Some(true),
                "name" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct PgTable {
    pool: deadpool_postgres::Pool,
    table: String,
    columns: Vec<Column>,
    schema: SchemaRef,
    /// Only rows of these events (a partner's grants); `None` reads every row.
    events: Option<Arc<Vec<String>>>,
}

/// A failure of PostgreSQL or of its pool, told apart from a query's own errors (see
/// [`crate::QueryError`]).
#[derive(Debug, thiserror::Error)]
#[error("reading PostgreSQL: {0}")]
pub struct Backend(#[source] pub Box<dyn std::error::Error + Send + Sync>);

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(Backend(Box::new(e))))
}

/// A value bound to a scan's SQL, typed as the column it is compared with.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Text(String),
    I16(i16),
    I32(i32),
    I64(i64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Texts(Vec<String>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(v) => v,
            Self::I16(v) => v,
            Self::I32(v) => v,
            Self::I64(v) => v,
            Self::Bool(v) => v,
            Self::Timestamp(v) => v,
            Self::Date(v) => v,
            Self::Texts(v) => v,
        }
    }

    /// `v` as a value of `kind`; `None` for NULL, another type, or a value the column cannot
    /// hold (then the filter stays in DataFusion).
    fn of(kind: Kind, v: &ScalarValue) -> Option<Self> {
        let int = || -> Option<i64> {
            match v {
                ScalarValue::Int8(Some(x)) => Some(i64::from(*x)),
                ScalarValue::Int16(Some(x)) => Some(i64::from(*x)),
                ScalarValue::Int32(Some(x)) => Some(i64::from(*x)),
                ScalarValue::Int64(Some(x)) => Some(*x),
                ScalarValue::UInt8(Some(x)) => Some(i64::from(*x)),
                ScalarValue::UInt16(Some(x)) => Some(i64::from(*x)),
                ScalarValue::UInt32(Some(x)) => Some(i64::from(*x)),
                ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
                _ => None,
            }
        };
        match kind {
            Kind::I16 => int().and_then(|x| i16::try_from(x).ok()).map(Self::I16),
            Kind::I32 => int().and_then(|x| i32::try_from(x).ok()).map(Self::I32),
            Kind::I64 => int().map(Self::I64),
            Kind::Bool => match v {
                ScalarValue::Boolean(Some(b)) => Some(Self::Bool(*b)),
                _ => None,
            },
            Kind::Text => match v {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => Some(Self::Text(s.clone())),
                _ => None,
            },
            Kind::Timestamp => {
                let micros = match v {
                    ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000)?,
                    ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000)?,
                    ScalarValue::TimestampMicrosecond(Some(us), _) => *us,
                    ScalarValue::TimestampNanosecond(Some(ns), _) if ns % 1_000 == 0 => ns / 1_000,
                    _ => return None,
                };
                // PostgreSQL's range starts at 4713 BC; chrono's reaches further back.
                DateTime::from_timestamp_micros(micros)
                    .filter(|t| chrono::Datelike::year(t) > -4712)
                    .map(Self::Timestamp)
            }
            Kind::Date => match v {
                ScalarValue::Date32(Some(d)) => epoch()
                    .checked_add_signed(chrono::Duration::days(i64::from(*d)))
                    .filter(|d| chrono::Datelike::year(d) > -4712)
                    .map(Self::Date),
                _ => None,
            },
            Kind::F32 | Kind::F64 | Kind::AsText => None,
        }
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")
}

/// The longest `IN` list pushed down (a longer one stays in DataFusion).
const MAX_IN_LIST: usize = 1_000;

/// A scan's statement and the values bound to it.
#[derive(Debug, Clone)]
pub struct Select {
    pub sql: String,
    params: Vec<Param>,
}

impl Select {
    /// `expr` as a condition in SQL, its values appended to `params` (`$n` in order), and
    /// whether PostgreSQL keeps exactly DataFusion's rows; `None` when it cannot be pushed.
    fn condition(
        columns: &[Column],
        expr: &Expr,
        params: &mut Vec<Param>,
    ) -> Option<(String, bool)> {
        let column = |e: &Expr| match e {
            Expr::Column(c) => columns.iter().find(|col| col.name == c.name),
            _ => None,
        };
        let bind = |p: Param, params: &mut Vec<Param>| {
            params.push(p);
            format!("${}", params.len())
        };
        match expr {
            Expr::BinaryExpr(b) if b.op == Operator::And => {
                let mark = params.len();
                let left = Self::condition(columns, &b.left, params);
                let right = left
                    .as_ref()
                    .and_then(|_| Self::condition(columns, &b.right, params));
                match (left, right) {
                    (Some((l, le)), Some((r, re))) => Some((format!("({l} AND {r})"), le && re)),
                    _ => {
                        params.truncate(mark);
                        None
                    }
                }
            }
            Expr::BinaryExpr(b) => {
                let (col, value, op) = match (&*b.left, &*b.right) {
                    (l, Expr::Literal(v, _)) => (column(l)?, v, b.op),
                    (Expr::Literal(v, _), r) => (column(r)?, v, b.op.swap()?),
                    _ => return None,
                };
                let sql_op = match op {
                    Operator::Eq => "=",
                    Operator::NotEq => "<>",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    Operator::GtEq => ">=",
                    _ => return None,
                };
                let exact = col.pushdown(op)?;
                let p = Param::of(col.kind, value)?;
                Some((
                    format!("{} {sql_op} {}", col.quoted(), bind(p, params)),
                    exact,
                ))
            }
            Expr::InList(list) if !list.list.is_empty() && list.list.len() <= MAX_IN_LIST => {
                let col = column(&list.expr)?;
                let exact = col.pushdown(Operator::Eq)?;
                let values: Vec<Param> = list
                    .list
                    .iter()
                    .map(|e| match e {
                        Expr::Literal(v, _) => Param::of(col.kind, v),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                let marks: Vec<String> = values.into_iter().map(|p| bind(p, params)).collect();
                let not = if list.negated { " NOT" } else { "" };
                Some((
                    format!("{}{not} IN ({})", col.quoted(), marks.join(", ")),
                    exact,
                ))
            }
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                let col = column(e).filter(|c| c.read.is_none())?;
                let what = if matches!(expr, Expr::IsNull(_)) {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                };
                Some((format!("{} {what}", col.quoted()), true))
            }
            Expr::Column(_) => {
                let col = column(expr).filter(|c| c.kind == Kind::Bool && c.read.is_none())?;
                Some((col.quoted(), true))
            }
            Expr::Not(e) => {
                let col = column(e).filter(|c| c.kind == Kind::Bool && c.read.is_none())?;
                Some((format!("NOT {}", col.quoted()), true))
            }
            _ => None,
        }
    }
}

impl PgTable {
    /// The table's columns as `information_schema` lists them; `None` if it does not exist.
    pub async fn open(pool: deadpool_postgres::Pool, table: &str) -> anyhow::Result<Option<Self>> {
        let client = pool.get().await?;
        let rows = client
            .query(
                "SELECT column_name::text, udt_name::text FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self::new(
            pool,
            table,
            rows.iter().map(|r| (r.get(0), r.get(1))),
        )))
    }

    /// A table of `columns` (name, PostgreSQL `udt_name`), each nullable in Arrow.
    fn new(
        pool: deadpool_postgres::Pool,
        table: &str,
        columns: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(name, udt)| Column {
                name,
                kind: Kind::of(&udt),
                udt,
                read: None,
            })
            .collect();
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.kind.arrow(), true))
                .collect::<Vec<_>>(),
        ));
        Self {
            pool,
            table: table.to_owned(),
            columns,
            schema,
            events: None,
        }
    }

    /// The same table restricted to rows of `events`, in PostgreSQL, before anything reaches
    /// DataFusion. `None` when the table has no `event_id` to restrict by.
    pub fn scoped(self, events: Arc<Vec<String>>) -> Option<Self> {
        self.columns
            .iter()
            .any(|c| c.name == "event_id")
            .then(|| Self {
                events: Some(events),
                ..self
            })
    }

    /// The same table with `column` read as `sql` (an expression over the table's columns,
    /// e.g. one that leaves out what this reader may not see); such a column is never
    /// filtered on in PostgreSQL, so its original values cannot be probed.
    pub fn redacted(mut self, column: &str, sql: &str) -> Self {
        if let Some(c) = self.columns.iter_mut().find(|c| c.name == column) {
            c.read = Some(sql.to_owned());
            // Read as text whatever the expression's type.
            c.kind = Kind::AsText;
        }
        self
    }

    /// The statement of a scan of `picked` columns under `filters` (those that translate;
    /// DataFusion applies the rest) and `limit` (only given when every filter is exact).
    pub fn select(&self, picked: &[usize], filters: &[Expr], limit: Option<usize>) -> Select {
        let columns: Vec<String> = picked
            .iter()
            .map(|i| {
                let c = &self.columns[*i];
                match (&c.read, c.kind) {
                    (Some(sql), _) => format!("({sql})::text AS {}", c.quoted()),
                    (None, Kind::AsText) => format!("{}::text", c.quoted()),
                    (None, _) => c.quoted(),
                }
            })
            .collect();
        let columns = if columns.is_empty() {
            "1".to_owned()
        } else {
            columns.join(", ")
        };
        let mut params = Vec::new();
        let mut conditions = Vec::new();
        if let Some(events) = &self.events {
            params.push(Param::Texts(events.to_vec()));
            conditions.push("event_id = ANY($1)".to_owned());
        }
        for f in filters {
            if let Some((sql, _)) = Select::condition(&self.columns, f, &mut params) {
                conditions.push(sql);
            }
        }
        let mut sql = format!(
            "SELECT {columns} FROM public.\"{}\"",
            self.table.replace('"', "\"\"")
        );
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Select { sql, params }
    }
}

/// One scan: its statement, read through a portal in batches.
#[derive(Debug)]
struct Scan {
    pool: deadpool_postgres::Pool,
    schema: SchemaRef,
    kinds: Vec<Kind>,
    select: Select,
}

impl PartitionStream for Scan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows = ctx.session_config().batch_size().max(1);
        // Two batches wait at most: the reader stops while the query does not read.
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        let (pool, schema, kinds, select) = (
            self.pool.clone(),
            self.schema.clone(),
            self.kinds.clone(),
            self.select.clone(),
        );
        builder.spawn(async move {
            let mut client = pool.get().await.map_err(external)?;
            // Read-only whatever the SQL: analysts never write through here.
            let t = client
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .map_err(external)?;
            let params: Vec<&(dyn ToSql + Sync)> =
                select.params.iter().map(Param::as_sql).collect();
            let portal = t
                .bind(select.sql.as_str(), &params)
                .await
                .map_err(external)?;
            loop {
                let batch = t
                    .query_portal(&portal, i32::try_from(rows).unwrap_or(i32::MAX))
                    .await
                    .map_err(external)?;
                let last = batch.len() < rows;
                if !batch.is_empty() {
                    let batch = to_batch(&schema, &kinds, &batch)?;
                    if tx.send(Ok(batch)).await.is_err() {
                        // The query stopped reading (a limit, an error, a timeout).
                        return Ok(());
                    }
                }
                if last {
                    break;
                }
            }
            t.commit().await.map_err(external)?;
            Ok(())
        });
        builder.build()
    }
}

fn to_batch(schema: &SchemaRef, kinds: &[Kind], rows: &[Row]) -> Result<RecordBatch> {
    if kinds.is_empty() {
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        return Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            vec![],
            &options,
        )?);
    }
    let arrays: Vec<ArrayRef> = kinds
        .iter()
        .enumerate()
        .map(|(at, kind)| column(rows, at, *kind))
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

fn column(rows: &[Row], at: usize, kind: Kind) -> ArrayRef {
    macro_rules! build {
        ($builder:ty, $t:ty) => {{
            let mut b = <$builder>::with_capacity(rows.len());
            for r in rows {
                b.append_option(r.get::<_, Option<$t>>(at));
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match kind {
        Kind::Text | Kind::AsText => {
            let mut b = StringBuilder::new();
            for r in rows {
                b.append_option(r.get::<_, Option<&str>>(at));
            }
            Arc::new(b.finish())
        }
        Kind::I16 => build!(Int16Builder, i16),
        Kind::I32 => build!(Int32Builder, i32),
        Kind::I64 => build!(Int64Builder, i64),
        Kind::F32 => build!(Float32Builder, f32),
        Kind::F64 => build!(Float64Builder, f64),
        Kind::Bool => build!(BooleanBuilder, bool),
        Kind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
            for r in rows {
                b.append_option(
                    r.get::<_, Option<DateTime<Utc>>>(at)
                        .map(|t| t.timestamp_micros()),
                );
            }
            Arc::new(b.finish())
        }
        Kind::Date => {
            let epoch = epoch();
            let mut b = Date32Builder::with_capacity(rows.len());
            for r in rows {
                b.append_option(
                    r.get::<_, Option<NaiveDate>>(at)
                        .map(|d| (d - epoch).num_days() as i32),
                );
            }
            Arc::new(b.finish())
        }
    }
}

#[async_trait]
impl TableProvider for PgTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(
                |f| match Select::condition(&self.columns, f, &mut Vec::new()) {
                    Some((_, true)) => TableProviderFilterPushDown::Exact,
                    Some((_, false)) => TableProviderFilterPushDown::Inexact,
                    None => TableProviderFilterPushDown::Unsupported,
                },
            )
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let picked: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let select = self.select(&picked, filters, limit);
        tracing::debug!(sql = %select.sql, "sql scan");
        let scan = Scan {
            pool: self.pool.clone(),
            schema: Arc::new(self.schema.project(&picked)?),
            kinds: picked.iter().map(|i| self.columns[*i].kind).collect(),
            select,
        };
        let schema = scan.schema.clone();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![Arc::new(scan)],
            None,
            [],
            false,
            limit,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    /// `t(id text, n int4, at timestamptz, score float8, doc jsonb, event_id text)`, no
    /// connection made.
    fn table(events: Option<Vec<String>>) -> PgTable {
        let manager = deadpool_postgres::Manager::from_config(
            tokio_postgres::Config::new(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig::default(),
        );
        let pool = deadpool_postgres::Pool::builder(manager).build().unwrap();
        let columns = [
            ("id", "text"),
            ("n", "int4"),
            ("at", "timestamptz"),
            ("score", "float8"),
            ("doc", "jsonb"),
            ("event_id", "text"),
        ];
        let t = PgTable::new(
            pool,
            "t",
            columns.map(|(name, udt)| (name.to_owned(), udt.to_owned())),
        );
        match events {
            Some(e) => t.scoped(Arc::new(e)).unwrap(),
            None => t,
        }
    }

    fn pushdown(t: &PgTable, filters: &[Expr]) -> Vec<TableProviderFilterPushDown> {
        t.supports_filters_pushdown(&filters.iter().collect::<Vec<_>>())
            .unwrap()
    }

    #[test]
    fn filters_and_the_limit_become_parameterized_sql() {
        let t = table(Some(vec!["e1".into()]));
        let at = ScalarValue::TimestampMicrosecond(Some(1_700_000_000_000_000), Some("UTC".into()));
        let filters = [
            col("n").gt_eq(lit(5i64)),
            lit("x'; DROP TABLE t; --").eq(col("id")),
            col("n").in_list(vec![lit(1i32), lit(2i32)], false),
            col("at").lt(Expr::Literal(at, None)),
            col("id").is_null().and(col("n").not_eq(lit(3i32))),
            // Stay in DataFusion: floats, jsonb as text, text ordering, a value int4 cannot hold.
            col("score").gt(lit(0.5)),
            col("doc").eq(lit("{}")),
            col("id").lt(lit("m")),
            col("n").eq(lit(i64::MAX)),
        ];
        let s = t.select(&[0, 1], &filters, Some(10));
        assert_eq!(
            s.sql,
            "SELECT \"id\", \"n\" FROM public.\"t\" WHERE event_id = ANY($1) AND \"n\" >= $2 \
             AND \"id\" = $3 AND \"n\" IN ($4, $5) AND \"at\" < $6 \
             AND (\"id\" IS NULL AND \"n\" <> $7) LIMIT 10"
        );
        assert_eq!(
            s.params,
            vec![
                Param::Texts(vec!["e1".into()]),
                Param::I32(5),
                Param::Text("x'; DROP TABLE t; --".into()),
                Param::I32(1),
                Param::I32(2),
                Param::Timestamp(DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
                Param::I32(3),
            ]
        );
        use TableProviderFilterPushDown::{Exact, Unsupported};
        assert_eq!(
            pushdown(&t, &filters),
            [
                Exact,
                Exact,
                Exact,
                Exact,
                Exact,
                Unsupported,
                Unsupported,
                Unsupported,
                Unsupported
            ]
        );
        // Nothing to filter, no limit: the columns only; none at all reads a constant.
        assert_eq!(
            table(None).select(&[], &[], None).sql,
            "SELECT 1 FROM public.\"t\""
        );
    }

    #[test]
    fn a_redacted_column_is_read_through_its_expression_and_never_filtered_on() {
        let t = table(None).redacted("doc", "doc - 'secret'");
        let filters = [col("doc").is_not_null(), col("doc").eq(lit("x"))];
        let s = t.select(&[4], &filters, None);
        assert_eq!(
            s.sql,
            "SELECT (doc - 'secret')::text AS \"doc\" FROM public.\"t\""
        );
        assert_eq!(
            pushdown(&t, &filters),
            [
                TableProviderFilterPushDown::Unsupported,
                TableProviderFilterPushDown::Unsupported
            ]
        );
    }
}
