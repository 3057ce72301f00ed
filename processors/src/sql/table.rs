//! A processor's declared table: the `-- table:`, `-- key:`, `-- merge:` (and optional
//! `-- time:`) header lines, checked against the query's output columns at load. The
//! projections crate creates the table from the resulting [`TableSpec`] and merges the
//! processor's partial rows into it (`projections/src/declared/`).
//!
//! ```sql
//! -- table: attendance_5m
//! -- key: event_id, window_start
//! -- merge: samples = sum, peak = max, low = min, window_end = last
//! ```
//!
//! The key must hold `event_id`: partners' SQL is scoped by it, and the processor keys its
//! output records by it, so every partial of one table row is in one partition and `last`
//! follows the log's order.

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use serde::{Deserialize, Serialize};

/// How a partial row's value merges into the row already stored under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// Added (NULLs ignored).
    Sum,
    /// The larger (NULLs ignored).
    Max,
    /// The smaller (NULLs ignored).
    Min,
    /// The latest partial's value, in log order.
    Last,
}

impl std::str::FromStr for Merge {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "sum" => Self::Sum,
            "max" => Self::Max,
            "min" => Self::Min,
            "last" => Self::Last,
            other => {
                return Err(format!(
                    "unknown merge rule {other:?} (sum, max, min, last)"
                ));
            }
        })
    }
}

/// A column's PostgreSQL type, mapped once from the query's Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Bigint,
    Double,
    Text,
    Timestamptz,
    Boolean,
}

impl ColumnType {
    /// The type a column of Arrow type `dt` gets (as its Avro field is written, see `avro.rs`).
    pub fn of(dt: &DataType) -> Option<Self> {
        Some(match dt {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16 => Self::Integer,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Self::Bigint,
            DataType::Float32 | DataType::Float64 => Self::Double,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::Text,
            DataType::Timestamp(_, _) => Self::Timestamptz,
            DataType::Boolean => Self::Boolean,
            _ => return None,
        })
    }

    pub fn sql(self) -> &'static str {
        match self {
            Self::Integer => "integer",
            Self::Bigint => "bigint",
            Self::Double => "double precision",
            Self::Text => "text",
            Self::Timestamptz => "timestamptz",
            Self::Boolean => "boolean",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Bigint | Self::Double)
    }

    /// Whether `rule` is defined on this type, the same in Rust (a batch's partials are merged
    /// before the upsert) and in PostgreSQL: sums of numbers, extremes of numbers and times.
    pub fn supports(self, rule: Merge) -> bool {
        match rule {
            Merge::Sum => self.numeric(),
            Merge::Max | Merge::Min => self.numeric() || self == Self::Timestamptz,
            Merge::Last => true,
        }
    }
}

/// One column of a declared table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub nullable: bool,
    /// `None` for a key column.
    pub merge: Option<Merge>,
}

/// A declared table: its name, its columns in the query's order, its key and how rows merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub key: Vec<String>,
    /// The column retention judges a row's age by (`-- time:`, else `window_start` if the
    /// query has it); `None`: rows are kept.
    pub time: Option<String>,
}

impl TableSpec {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The header lines as written, with their line numbers for errors.
#[derive(Debug, Clone, PartialEq)]
pub struct TableHeader {
    origin: String,
    name: String,
    key: Vec<String>,
    key_line: usize,
    merge: Vec<(String, Merge)>,
    merge_line: usize,
    time: Option<(String, usize)>,
}

/// `[a-z_][a-z0-9_]*`: spliced into SQL (quoted as well).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl TableHeader {
    /// The table's name, for listings.
    pub fn table(&self) -> &str {
        &self.name
    }

    /// The table lines of a file's header (its leading comments); `None` without `-- table:`.
    pub fn parse(origin: &str, text: &str) -> anyhow::Result<Option<Self>> {
        let mut lines: Vec<(usize, &str, &str)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(rest) = line.trim().strip_prefix("--") else {
                if line.trim().is_empty() {
                    continue;
                }
                break;
            };
            if let Some((k, v)) = rest.split_once(':') {
                lines.push((i + 1, k.trim(), v.trim()));
            }
        }
        let find = |k: &str| lines.iter().find(|(_, key, _)| *key == k).copied();
        let at = |line: usize| format!("{origin}:{line}");
        let Some((table_line, _, name)) = find("table") else {
            if let Some((line, k, _)) = find("key").or(find("merge")).or(find("time")) {
                anyhow::bail!("{}: `-- {k}:` without a `-- table: NAME` line", at(line));
            }
            return Ok(None);
        };
        anyhow::ensure!(
            is_identifier(name),
            "{}: table name {name:?} must match [a-z_][a-z0-9_]*",
            at(table_line)
        );
        let (key_line, _, keys) = find("key").ok_or_else(|| {
            anyhow::anyhow!(
                "{}: `-- table:` needs a `-- key: col, …` line",
                at(table_line)
            )
        })?;
        let key: Vec<String> = keys
            .split(',')
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        anyhow::ensure!(!key.is_empty(), "{}: the key names no column", at(key_line));
        for k in &key {
            anyhow::ensure!(
                is_identifier(k),
                "{}: key column {k:?} must match [a-z_][a-z0-9_]*",
                at(key_line)
            );
        }
        anyhow::ensure!(
            key.iter().any(|k| k == "event_id"),
            "{}: the key must hold event_id (partners' SQL is scoped by it, and a row's partials must share a partition)",
            at(key_line)
        );
        let (merge_line, merges) = match find("merge") {
            Some((line, _, v)) => (line, v),
            None => (table_line, ""),
        };
        let mut merge = Vec::new();
        for part in merges.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (col, rule) = part.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("{}: {part:?} is not `column = rule`", at(merge_line))
            })?;
            let (col, rule) = (col.trim(), rule.trim());
            anyhow::ensure!(
                is_identifier(col),
                "{}: column {col:?} must match [a-z_][a-z0-9_]*",
                at(merge_line)
            );
            let rule: Merge = rule
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: {col}: {e}", at(merge_line)))?;
            anyhow::ensure!(
                !merge.iter().any(|(c, _)| c == col),
                "{}: {col} has two merge rules",
                at(merge_line)
            );
            merge.push((col.to_owned(), rule));
        }
        let time = find("time").map(|(line, _, v)| (v.to_owned(), line));
        Ok(Some(Self {
            origin: origin.to_owned(),
            name: name.to_owned(),
            key,
            key_line,
            merge,
            merge_line,
            time,
        }))
    }

    /// Checks the header against the query's output columns: keys and merged columns exist,
    /// every other column has a rule its type supports, every name is a plain identifier.
    pub fn resolve(&self, schema: &SchemaRef) -> anyhow::Result<TableSpec> {
        let at = |line: usize| format!("{}:{line}", self.origin);
        let mut columns = Vec::new();
        for f in schema.fields() {
            let name = f.name();
            anyhow::ensure!(
                is_identifier(name),
                "{}: the query's column {name:?} must be named [a-z_][a-z0-9_]* for a table (alias it with AS)",
                self.origin
            );
            let ty = ColumnType::of(f.data_type()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: column {name} of type {} has no table type; cast it in the query",
                    self.origin,
                    f.data_type()
                )
            })?;
            let is_key = self.key.iter().any(|k| k == name);
            let rule = self.merge.iter().find(|(c, _)| c == name).map(|(_, r)| *r);
            let merge = match (is_key, rule) {
                (true, Some(_)) => anyhow::bail!(
                    "{}: {name} is a key column, so it takes no merge rule",
                    at(self.merge_line)
                ),
                (true, None) => None,
                (false, None) => anyhow::bail!(
                    "{}: column {name} has no merge rule (add `{name} = sum|max|min|last`)",
                    at(self.merge_line)
                ),
                (false, Some(rule)) => {
                    anyhow::ensure!(
                        ty.supports(rule),
                        "{}: {name} = {rule:?} is not defined on {} (sum: numbers; max, min: numbers and times; last: any)",
                        at(self.merge_line),
                        ty.sql()
                    );
                    Some(rule)
                }
            };
            columns.push(Column {
                name: name.clone(),
                ty,
                nullable: f.is_nullable(),
                merge,
            });
        }
        let has = |c: &str| columns.iter().any(|col| col.name == c);
        for k in &self.key {
            anyhow::ensure!(
                has(k),
                "{}: key column {k} is not a column of the query",
                at(self.key_line)
            );
        }
        for (c, _) in &self.merge {
            anyhow::ensure!(
                has(c),
                "{}: merged column {c} is not a column of the query",
                at(self.merge_line)
            );
        }
        let time = match &self.time {
            Some((c, line)) => {
                let col = columns.iter().find(|col| &col.name == c);
                anyhow::ensure!(
                    col.is_some_and(|col| col.ty == ColumnType::Timestamptz),
                    "{}: time column {c} is not a timestamp column of the query",
                    at(*line)
                );
                Some(c.clone())
            }
            None => columns
                .iter()
                .find(|c| c.name == "window_start" && c.ty == ColumnType::Timestamptz)
                .map(|c| c.name.clone()),
        };
        Ok(TableSpec {
            name: self.name.clone(),
            columns,
            key: self.key.clone(),
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("entries", DataType::Int64, false),
            Field::new("gate_id", DataType::Utf8, true),
        ]))
    }

    fn header(lines: &str) -> anyhow::Result<Option<TableHeader>> {
        TableHeader::parse("x.sql", &format!("-- name: x\n{lines}\nSELECT 1\n"))
    }

    fn err(lines: &str) -> String {
        match header(lines).and_then(|h| h.unwrap().resolve(&schema())) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_header_resolves_to_typed_columns_and_rules() {
        let spec = header(
            "-- table: t\n-- key: event_id, window_start\n-- merge: entries = sum, gate_id = last",
        )
        .unwrap()
        .unwrap()
        .resolve(&schema())
        .unwrap();
        assert_eq!(spec.key, ["event_id", "window_start"]);
        assert_eq!(spec.time.as_deref(), Some("window_start"));
        let entries = spec.column("entries").unwrap();
        assert_eq!(
            (entries.ty, entries.merge),
            (ColumnType::Bigint, Some(Merge::Sum))
        );
        assert_eq!(spec.column("event_id").unwrap().merge, None);
        assert_eq!(header("-- input: checkins").unwrap(), None);
    }

    #[test]
    fn header_errors_name_the_file_line_and_column() {
        let base = "-- table: t\n-- key: event_id, window_start";
        assert_eq!(
            err(&format!("{base}\n-- merge: entries = sum")),
            "x.sql:4: column gate_id has no merge rule (add `gate_id = sum|max|min|last`)"
        );
        assert_eq!(
            err(&format!("{base}\n-- merge: entries = avg, gate_id = last")),
            "x.sql:4: entries: unknown merge rule \"avg\" (sum, max, min, last)"
        );
        assert_eq!(
            err(&format!("{base}\n-- merge: entries = sum, gate_id = sum")),
            "x.sql:4: gate_id = Sum is not defined on text (sum: numbers; max, min: numbers and times; last: any)"
        );
        assert_eq!(
            err(&format!(
                "{base}\n-- merge: entries = sum, gate_id = last, nope = max"
            )),
            "x.sql:4: merged column nope is not a column of the query"
        );
        assert_eq!(
            err(
                "-- table: t\n-- key: event_id, gate\n-- merge: entries = sum, gate_id = last, window_start = max"
            ),
            "x.sql:3: key column gate is not a column of the query"
        );
        assert_eq!(
            err("-- table: t\n-- key: window_start\n-- merge: entries = sum"),
            "x.sql:3: the key must hold event_id (partners' SQL is scoped by it, and a row's partials must share a partition)"
        );
        assert_eq!(
            err("-- table: T-1\n-- key: event_id"),
            "x.sql:2: table name \"T-1\" must match [a-z_][a-z0-9_]*"
        );
        assert_eq!(
            err("-- table: t\n-- merge: entries = sum"),
            "x.sql:2: `-- table:` needs a `-- key: col, …` line"
        );
        assert_eq!(
            err("-- key: event_id"),
            "x.sql:2: `-- key:` without a `-- table: NAME` line"
        );
        assert_eq!(
            err(&format!(
                "{base}\n-- merge: entries = sum, gate_id = last, event_id = last"
            )),
            "x.sql:4: event_id is a key column, so it takes no merge rule"
        );
        assert_eq!(
            err(&format!(
                "{base}\n-- merge: entries = sum, gate_id = last\n-- time: gate_id"
            )),
            "x.sql:5: time column gate_id is not a timestamp column of the query"
        );
    }
}
