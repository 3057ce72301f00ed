//! Writing a batch like `COPY`: the batch's rows (already merged per key in memory) go to a
//! temporary table with binary `COPY`, then one `INSERT … SELECT … ON CONFLICT` per target
//! table merges them in. `COPY` is PostgreSQL's bulk load path (no array parameter per column
//! to build and unpack, as `unnest` upserts had), and the merge is a plain set operation. It
//! costs more round trips than one upsert (the `COPY`'s statement, start and end, then the
//! merge), so it pays with many rows per batch.
//!
//! The temporary table lives as long as the connection (pooled connections are reused), so
//! it is created when the session lacks it, with `ON COMMIT DELETE ROWS`; the merge empties it
//! as it reads it (`DELETE … RETURNING`), because one transaction may stage several times (the
//! refusal bisection's attempts, in savepoints). Its name carries a hash of its columns, so
//! a definition that changed (a declared table) never meets an old one in the same session.

use std::hash::{Hash, Hasher};
use std::pin::Pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{SimpleQueryMessage, Transaction};

use super::sql;

/// How the staged rows of one target table are merged into it: the table, its columns as
/// staged, and what a row whose key exists does (`ON CONFLICT …`, the target aliased `t`).
#[derive(Debug, Clone)]
pub struct Staging {
    types: Vec<Type>,
    /// Creates the temporary table when the session lacks it (`IF NOT EXISTS` would log a
    /// notice every batch).
    ensure: String,
    copy: String,
    /// With `{schema}` where the target's schema goes.
    merge: String,
}

impl Staging {
    /// `table` and `columns` are spliced into SQL as they are: quote them if they need it.
    /// `on_conflict` is the whole clause, e.g. `ON CONFLICT (id) DO UPDATE SET n = t.n +
    /// excluded.n`.
    pub fn new(table: &str, columns: &[(&str, Type)], on_conflict: &str) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        table.hash(&mut h);
        for (name, ty) in columns {
            name.hash(&mut h);
            ty.oid().hash(&mut h);
        }
        let plain: String = table
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .map(|c| c.to_ascii_lowercase())
            .take(40)
            .collect();
        let temp = format!("stage_{plain}_{:016x}", h.finish());
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let names = names.join(", ");
        let defs: Vec<String> = columns
            .iter()
            .map(|(n, ty)| format!("{n} {}", ty.name()))
            .collect();
        Self {
            types: columns.iter().map(|(_, ty)| ty.clone()).collect(),
            ensure: format!(
                "DO $$BEGIN IF to_regclass('pg_temp.{temp}') IS NULL THEN
                    CREATE TEMP TABLE {temp} ({}) ON COMMIT DELETE ROWS; END IF; END$$",
                defs.join(", ")
            ),
            copy: format!("COPY pg_temp.{temp} ({names}) FROM STDIN BINARY"),
            merge: format!(
                "WITH s AS (DELETE FROM pg_temp.{temp} RETURNING {names})
                 INSERT INTO {{schema}}.{table} AS t ({names}) SELECT {names} FROM s {on_conflict}"
            ),
        }
    }

    /// The merge statement, with `{schema}` where the schema goes (for tests and reading).
    pub fn merge_sql(&self) -> &str {
        &self.merge
    }

    /// Starts staging rows in `tx`; write them with [`Stage::write`], then [`Stage::merge`].
    /// Callers skip an empty batch: it would cost three round trips for nothing.
    pub async fn begin<'t>(
        &'t self,
        tx: &'t Transaction<'t>,
    ) -> Result<Stage<'t>, tokio_postgres::Error> {
        // Sent together (the connection runs them in order), so making sure of the table
        // costs no round trip of its own.
        let (ensured, sink) =
            futures::join!(tx.batch_execute(&self.ensure), tx.copy_in(&self.copy));
        ensured?;
        let sink = sink?;
        Ok(Stage {
            staging: self,
            tx,
            writer: Box::pin(BinaryCopyInWriter::new(sink, &self.types)),
        })
    }
}

/// Rows being copied to a [`Staging`]'s temporary table.
pub struct Stage<'t> {
    staging: &'t Staging,
    tx: &'t Transaction<'t>,
    writer: Pin<Box<BinaryCopyInWriter>>,
}

impl Stage<'_> {
    /// Writes one row, the values in the staging's column order.
    pub async fn write(
        &mut self,
        values: &[&(dyn ToSql + Sync)],
    ) -> Result<(), tokio_postgres::Error> {
        self.writer.as_mut().write(values).await
    }

    /// Ends the `COPY` and merges the staged rows into `schema`'s table, emptying the stage.
    pub async fn merge(mut self, schema: &str) -> Result<u64, tokio_postgres::Error> {
        self.writer.as_mut().finish().await?;
        // A simple query: one round trip, where a statement without parameters would be
        // prepared first.
        let done = self
            .tx
            .simple_query(&sql(&self.staging.merge, schema))
            .await?;
        Ok(done
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_reads_and_empties_the_stage_in_one_statement() {
        let s = Staging::new(
            "t",
            &[("id", Type::TEXT), ("n", Type::INT8)],
            "ON CONFLICT (id) DO UPDATE SET n = t.n + excluded.n",
        );
        let merge = s.merge_sql();
        assert!(
            merge.starts_with("WITH s AS (DELETE FROM pg_temp.stage_t_"),
            "{merge}"
        );
        assert!(
            merge.ends_with(
                "INSERT INTO {schema}.t AS t (id, n) SELECT id, n FROM s \
                 ON CONFLICT (id) DO UPDATE SET n = t.n + excluded.n"
            ),
            "{merge}"
        );
    }

    #[test]
    fn a_changed_definition_stages_in_another_table() {
        let name = |cols: &[(&str, Type)]| {
            let s = Staging::new("\"Gates\"", cols, "ON CONFLICT DO NOTHING");
            s.copy.clone()
        };
        let a = name(&[("id", Type::TEXT)]);
        assert_eq!(a, name(&[("id", Type::TEXT)]), "stable for one definition");
        assert!(a.starts_with("COPY pg_temp.stage_gates_"), "{a}");
        assert_ne!(a, name(&[("id", Type::TEXT), ("n", Type::INT8)]));
        assert_ne!(a, name(&[("id", Type::INT8)]));
    }
}
