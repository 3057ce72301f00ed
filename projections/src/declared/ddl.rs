//! A declared table's DDL, and the migration decision: the spec a table was created with is
//! recorded in `declared_tables`, and at start the query's current spec is compared with it.
//! New nullable columns are added; anything else that changes the table is refused, for every
//! declared table, before anything is written.

use anyhow::Context;
use muster_processors::sql::table::{Column, Merge, TableSpec};
use muster_runtime::migrate::Migrations;
use muster_schemas::read_models::DECLARED_CATALOGUE;

/// The catalogue of declared tables: the spec each was created (or last migrated) with.
pub static MIGRATIONS: Migrations = Migrations {
    component: "declared_tables",
    steps: &["CREATE TABLE declared_tables (
        name text PRIMARY KEY,
        processor text NOT NULL,
        origin text NOT NULL,
        spec jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now())"],
};

/// An identifier, quoted (names are checked to be `[a-z_][a-z0-9_]*` at parse; quoting keeps
/// keywords such as `end` usable).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_ddl(c: &Column, key: bool) -> String {
    // Only key columns are NOT NULL: a column added later is NULL in the rows before it.
    format!(
        "{} {}{}",
        quote(&c.name),
        c.ty.sql(),
        if key { " NOT NULL" } else { "" }
    )
}

/// `CREATE TABLE` (and the time column's index) with `{schema}` where the schema goes.
pub fn create(spec: &TableSpec) -> String {
    let mut cols: Vec<String> = spec
        .columns
        .iter()
        .map(|c| column_ddl(c, spec.key.contains(&c.name)))
        .collect();
    let key: Vec<String> = spec.key.iter().map(|k| quote(k)).collect();
    cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
    let table = format!("{{schema}}.{}", quote(&spec.name));
    let mut ddl = format!("CREATE TABLE {table} ({})", cols.join(", "));
    if let Some(time) = &spec.time {
        ddl.push_str(&format!("; CREATE INDEX ON {table} ({})", quote(time)));
    }
    ddl
}

/// What starting with `new` does to a table recorded as `old`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Create,
    Unchanged,
    /// Adds these columns (none: only the recorded spec changes, e.g. a merge rule).
    Alter {
        add: Vec<Column>,
    },
}

/// The migration `new` needs, or why it is refused.
pub fn decide(old: Option<&TableSpec>, new: &TableSpec) -> Result<Step, String> {
    let Some(old) = old else {
        return Ok(Step::Create);
    };
    if old == new {
        return Ok(Step::Unchanged);
    }
    let name = &new.name;
    if old.key != new.key {
        return Err(format!(
            "table {name}: the key changed from ({}) to ({}); a new key needs a new table name",
            old.key.join(", "),
            new.key.join(", ")
        ));
    }
    for c in &old.columns {
        match new.column(&c.name) {
            None => {
                return Err(format!(
                    "table {name}: column {} was removed from the query; keep it, or declare a new table",
                    c.name
                ));
            }
            Some(n) if n.ty != c.ty => {
                return Err(format!(
                    "table {name}: column {} changed type from {} to {}; cast it back, or declare a new table",
                    c.name,
                    c.ty.sql(),
                    n.ty.sql()
                ));
            }
            Some(_) => {}
        }
    }
    let mut add = Vec::new();
    for c in &new.columns {
        if old.column(&c.name).is_none() {
            if !c.nullable {
                return Err(format!(
                    "table {name}: new column {} is NOT NULL, but the rows and records before it have no value (the registry refuses such a field too); make it nullable",
                    c.name
                ));
            }
            add.push(c.clone());
        }
    }
    Ok(Step::Alter { add })
}

/// One declared table to migrate: its spec and the processor that declares it.
pub struct Declared<'a> {
    pub spec: &'a TableSpec,
    pub processor: &'a str,
    pub origin: &'a str,
}

/// Creates or migrates every declared table in `public`, in one transaction under the
/// migration lock; refuses (writing nothing) if any table's change is not allowed, or if a
/// table of that name exists that is not a declared table.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    tables: &[Declared<'_>],
) -> anyhow::Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7010773)", &[])
        .await
        .context("taking the migration lock")?;
    let mut plan = Vec::new();
    let mut refused = Vec::new();
    for t in tables {
        let row = tx
            .query_opt(
                &format!("SELECT spec FROM {DECLARED_CATALOGUE} WHERE name = $1"),
                &[&t.spec.name],
            )
            .await
            .context("reading the declared tables")?;
        let old: Option<TableSpec> = match row {
            Some(r) => Some(
                serde_json::from_value(r.get(0))
                    .with_context(|| format!("the recorded spec of {}", t.spec.name))?,
            ),
            None => None,
        };
        if old.is_none() {
            let exists: bool = tx
                .query_one(
                    "SELECT to_regclass('public.' || quote_ident($1)) IS NOT NULL",
                    &[&t.spec.name],
                )
                .await?
                .get(0);
            if exists {
                refused.push(format!(
                    "{}: table {} already exists and is not a declared table; choose another name",
                    t.origin, t.spec.name
                ));
                continue;
            }
        }
        match decide(old.as_ref(), t.spec) {
            Ok(step) => plan.push((t, old, step)),
            Err(why) => refused.push(format!("{}: {why}", t.origin)),
        }
    }
    anyhow::ensure!(
        refused.is_empty(),
        "declared tables refused, nothing changed:\n  {}",
        refused.join("\n  ")
    );
    for (t, old, step) in plan {
        let name = &t.spec.name;
        match &step {
            Step::Unchanged => continue,
            Step::Create => tx
                .batch_execute(&muster_runtime::projection::sql(&create(t.spec), "public"))
                .await
                .with_context(|| format!("creating table {name}"))?,
            Step::Alter { add } => {
                for c in add {
                    tx.batch_execute(&format!(
                        "ALTER TABLE public.{} ADD COLUMN {}",
                        quote(name),
                        column_ddl(c, false)
                    ))
                    .await
                    .with_context(|| format!("adding column {} to {name}", c.name))?;
                }
                if let Some(old) = &old {
                    warn_on_rule_changes(old, t.spec);
                }
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO {DECLARED_CATALOGUE} (name, processor, origin, spec) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET processor = excluded.processor,
                    origin = excluded.origin, spec = excluded.spec, updated_at = now()"
            ),
            &[
                name,
                &t.processor,
                &t.origin,
                &serde_json::to_value(t.spec)?,
            ],
        )
        .await
        .with_context(|| format!("recording table {name}"))?;
        tracing::info!(table = %name, ?step, "declared table migrated");
    }
    tx.commit()
        .await
        .context("committing the declared tables")?;
    Ok(())
}

/// A changed merge rule applies to partials from now on; the rows already merged stay.
fn warn_on_rule_changes(old: &TableSpec, new: &TableSpec) {
    for c in &new.columns {
        let before: Option<Merge> = old.column(&c.name).and_then(|o| o.merge);
        if old.column(&c.name).is_some() && before != c.merge {
            tracing::warn!(table = %new.name, column = %c.name, ?before, now = ?c.merge,
                "merge rule changed: rows merged so far keep the old rule's result (muster replay rebuilds them)");
        }
    }
}

#[cfg(test)]
mod tests {
    use muster_processors::sql::table::ColumnType;

    use super::*;

    fn col(name: &str, ty: ColumnType, nullable: bool, merge: Option<Merge>) -> Column {
        Column {
            name: name.into(),
            ty,
            nullable,
            merge,
        }
    }

    fn spec(extra: Vec<Column>) -> TableSpec {
        let mut columns = vec![
            col("event_id", ColumnType::Text, false, None),
            col("window_start", ColumnType::Timestamptz, true, None),
            col("entries", ColumnType::Bigint, false, Some(Merge::Sum)),
        ];
        columns.extend(extra);
        TableSpec {
            name: "t".into(),
            columns,
            key: vec!["event_id".into(), "window_start".into()],
            time: Some("window_start".into()),
        }
    }

    #[test]
    fn the_ddl_quotes_names_and_keys_the_table() {
        assert_eq!(
            create(&spec(vec![])),
            "CREATE TABLE {schema}.\"t\" (\"event_id\" text NOT NULL, \"window_start\" timestamptz NOT NULL, \
             \"entries\" bigint, PRIMARY KEY (\"event_id\", \"window_start\")); \
             CREATE INDEX ON {schema}.\"t\" (\"window_start\")"
        );
    }

    #[test]
    fn a_new_nullable_column_is_added_and_other_changes_are_refused() {
        let old = spec(vec![]);
        assert_eq!(decide(None, &old), Ok(Step::Create));
        assert_eq!(decide(Some(&old), &old), Ok(Step::Unchanged));
        let peak = col("peak", ColumnType::Bigint, true, Some(Merge::Max));
        assert_eq!(
            decide(Some(&old), &spec(vec![peak.clone()])),
            Ok(Step::Alter { add: vec![peak] })
        );
        let mut retyped = spec(vec![]);
        retyped.columns[2].ty = ColumnType::Double;
        assert_eq!(
            decide(Some(&old), &retyped).unwrap_err(),
            "table t: column entries changed type from bigint to double precision; cast it back, or declare a new table"
        );
        let mut removed = spec(vec![]);
        removed.columns.pop();
        assert!(
            decide(Some(&old), &removed)
                .unwrap_err()
                .contains("column entries was removed")
        );
        let mut rekeyed = spec(vec![]);
        rekeyed.key.pop();
        assert!(
            decide(Some(&old), &rekeyed)
                .unwrap_err()
                .contains("the key changed from (event_id, window_start) to (event_id)")
        );
        let strict = col("peak", ColumnType::Bigint, false, Some(Merge::Max));
        assert!(
            decide(Some(&old), &spec(vec![strict]))
                .unwrap_err()
                .contains("new column peak is NOT NULL")
        );
        // A merge rule alone changes no DDL.
        let mut rule = spec(vec![]);
        rule.columns[2].merge = Some(Merge::Max);
        assert_eq!(decide(Some(&old), &rule), Ok(Step::Alter { add: vec![] }));
    }
}
