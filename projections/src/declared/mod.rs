//! Declared tables: a SQL processor whose file says `-- table:` gets a read model, kept by a
//! generic projection on the same runtime as the hand-written ones (its own consumer group,
//! offsets in the batch's transaction, dead letters, replay by the table's name, retention by
//! its time column). Its records are decoded by their registered schema, not by a struct.

pub mod ddl;
pub mod merge;

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use muster_processors::ProcessorsConfig;
use muster_processors::sql::table::TableSpec;
use muster_runtime::projection::{Projection, Rejected, Target};
use muster_schemas::{Codec, camel_case};

/// The projection of one declared table; its name is the table's.
pub struct DeclaredTable {
    pub spec: TableSpec,
    /// The processor that declares it, and its file.
    pub processor: String,
    pub origin: String,
    topic: &'static str,
    name: &'static str,
    tables: &'static [&'static str],
    migrations: &'static [&'static str],
    /// The Avro field of each column, in the spec's order.
    fields: Vec<String>,
    staging: muster_runtime::projection::Staging,
}

/// A string for the life of the process (projections are built once at start).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl DeclaredTable {
    pub fn new(spec: TableSpec, processor: &str, origin: &str, topic: &'static str) -> Self {
        let name = leak(spec.name.clone());
        Self {
            processor: processor.to_owned(),
            origin: origin.to_owned(),
            topic,
            name,
            tables: Box::leak(Box::new([name])),
            migrations: Box::leak(Box::new([leak(ddl::create(&spec))])),
            fields: spec.columns.iter().map(|c| camel_case(&c.name)).collect(),
            staging: merge::staging(&spec),
            spec,
        }
    }

    /// The table and the column retention judges its rows by, if it has one.
    pub fn retention(&self) -> Option<(&'static str, String)> {
        self.spec.time.clone().map(|t| (self.name, t))
    }
}

/// The tables the SQL processors (built-in and `processors.sql_dirs`) declare. A name taken
/// by a hand-written projection or its tables, or declared twice, is refused.
pub fn load(processors: &ProcessorsConfig) -> anyhow::Result<Vec<Arc<DeclaredTable>>> {
    let builtin = crate::registry();
    let taken = |n: &str| {
        builtin
            .iter()
            .any(|p| p.name() == n || p.tables().contains(&n))
            || muster_schemas::read_models::ADMIN_TABLES.contains(&n)
            || n == muster_schemas::read_models::DECLARED_CATALOGUE
    };
    let mut out: Vec<Arc<DeclaredTable>> = Vec::new();
    for p in muster_processors::sql::load(processors)? {
        let Some(spec) = p.table() else { continue };
        anyhow::ensure!(
            !taken(&spec.name),
            "{}: table {} is a name muster already uses; choose another",
            p.def.origin,
            spec.name
        );
        if let Some(other) = out.iter().find(|t| t.spec.name == spec.name) {
            anyhow::bail!(
                "{}: table {} is already declared by {}",
                p.def.origin,
                spec.name,
                other.origin
            );
        }
        out.push(Arc::new(DeclaredTable::new(
            spec.clone(),
            &p.def.name,
            &p.def.origin,
            p.def.output,
        )));
    }
    Ok(out)
}

/// Creates or migrates the declared tables in `public` (see [`ddl::migrate`]).
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    tables: &[Arc<DeclaredTable>],
) -> anyhow::Result<()> {
    let declared: Vec<ddl::Declared<'_>> = tables
        .iter()
        .map(|t| ddl::Declared {
            spec: &t.spec,
            processor: &t.processor,
            origin: &t.origin,
        })
        .collect();
    ddl::migrate(client, &declared).await
}

#[async_trait]
impl Projection for DeclaredTable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![self.topic]
    }

    fn tables(&self) -> &'static [&'static str] {
        self.tables
    }

    fn migrations(&self) -> &'static [&'static str] {
        self.migrations
    }

    async fn apply(&self, at: Target<'_>, codec: &Codec) -> anyhow::Result<Vec<Rejected>> {
        let Target { tx, schema, batch } = at;
        let mut rows = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (index, r) in batch.iter().enumerate() {
            let decoded = match codec.decode_any(&r.payload).await {
                Ok(v) => merge::decode(&self.spec, &self.fields, v),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => Err(e.to_string()),
            };
            match decoded {
                Ok(row) => rows.push(row),
                Err(reason) => rejected.push(Rejected {
                    index,
                    reason,
                    event_id: r.key.clone(),
                }),
            }
        }
        let rows = merge::merge_rows(&self.spec, rows)?;
        if rows.is_empty() {
            return Ok(rejected);
        }
        let values = rows
            .iter()
            .map(|r| merge::values(&self.spec, r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut stage = self.staging.begin(tx).await?;
        for row in &values {
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row
                .iter()
                .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            stage.write(&refs).await?;
        }
        stage
            .merge(schema)
            .await
            .with_context(|| format!("merging into {}", self.name))?;
        Ok(rejected)
    }
}
