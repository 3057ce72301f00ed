//! Projection tables as DataFusion tables. A scan reads only the columns the query uses (and
//! only `limit` rows when DataFusion can push one down) from PostgreSQL, in one read-only
//! transaction, into Arrow batches.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use tokio_postgres::Row;

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

#[derive(Debug)]
pub struct PgTable {
    pool: deadpool_postgres::Pool,
    table: String,
    columns: Vec<(String, Kind)>,
    schema: SchemaRef,
    /// Only rows of these events (a partner's grants); `None` reads every row.
    events: Option<Arc<Vec<String>>>,
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
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
        let columns: Vec<(String, Kind)> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), Kind::of(r.get::<_, &str>(1))))
            .collect();
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, kind)| Field::new(name, kind.arrow(), true))
                .collect::<Vec<_>>(),
        ));
        Ok(Some(Self {
            pool,
            table: table.to_owned(),
            columns,
            schema,
            events: None,
        }))
    }

    /// The same table restricted to rows of `events`, in PostgreSQL, before anything reaches
    /// DataFusion. `None` when the table has no `event_id` to restrict by.
    pub fn scoped(self, events: Arc<Vec<String>>) -> Option<Self> {
        self.columns
            .iter()
            .any(|(name, _)| name == "event_id")
            .then(|| Self {
                events: Some(events),
                ..self
            })
    }

    async fn read(&self, picked: &[usize], limit: Option<usize>) -> Result<RecordBatch> {
        let schema = Arc::new(self.schema.project(picked)?);
        let select: Vec<String> = picked
            .iter()
            .map(|i| {
                let (name, kind) = &self.columns[*i];
                let quoted = format!("\"{}\"", name.replace('"', "\"\""));
                if *kind == Kind::AsText {
                    format!("{quoted}::text")
                } else {
                    quoted
                }
            })
            .collect();
        let select = if select.is_empty() {
            "1".to_owned()
        } else {
            select.join(", ")
        };
        let mut sql = format!("SELECT {select} FROM public.\"{}\"", self.table);
        if self.events.is_some() {
            sql.push_str(" WHERE event_id = ANY($1)");
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let mut client = self.pool.get().await.map_err(external)?;
        // Read-only whatever the SQL: analysts never write through here.
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(external)?;
        let rows = match &self.events {
            Some(events) => tx.query(&sql, &[&**events]).await,
            None => tx.query(&sql, &[]).await,
        }
        .map_err(external)?;
        tx.commit().await.map_err(external)?;
        let arrays: Vec<ArrayRef> = picked
            .iter()
            .enumerate()
            .map(|(at, i)| column(&rows, at, self.columns[*i].1))
            .collect();
        if arrays.is_empty() {
            let options = datafusion::arrow::record_batch::RecordBatchOptions::new()
                .with_row_count(Some(rows.len()));
            return Ok(RecordBatch::try_new_with_options(schema, vec![], &options)?);
        }
        Ok(RecordBatch::try_new(schema, arrays)?)
    }
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
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch");
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

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let picked: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let batch = self.read(&picked, limit).await?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        table.scan(state, None, &[], None).await
    }
}
