//! Projection tables as DataFusion tables. A scan reads from PostgreSQL only the columns the
//! query uses, only the rows its simple filters keep (comparisons with a literal, `IN` lists,
//! `IS NULL`, pushed down as parameterized SQL) and at most its limit, in one read-only
//! transaction, through a portal in batches of the session's batch size: a scan holds a few
//! batches at a time whatever the table's size.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use tokio_postgres::types::ToSql;

mod columns;
mod filters;

use columns::{Column, Kind, to_batch};
use filters::Param;
pub use filters::Select;

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
    use chrono::DateTime;
    use datafusion::common::ScalarValue;
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
