//! A row-level diff of a query's output against its expected rows, written for the person who
//! changed the query: which rows are missing, which are unexpected, and which fields of a row
//! changed, rather than two JSON documents to compare by eye.
//!
//! Rows are matched by their text columns (ids and window bounds are strings in golden files;
//! measures are numbers), so a changed count shows as one changed field of its window's row.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde_json::{Map, Value};

/// At most this many row lines per processor; the counts above them stay exact.
const SHOWN: usize = 20;

type Row = Map<String, Value>;

/// How a query's rows differ from the expected ones; empty when they are equal.
#[derive(Debug, Default)]
pub struct RowDiff {
    pub expected_rows: usize,
    pub got_rows: usize,
    /// Columns the query now has that the expected rows do not, and the reverse.
    pub added_columns: Vec<String>,
    pub removed_columns: Vec<String>,
    pub missing: Vec<Row>,
    pub unexpected: Vec<Row>,
    pub changed: Vec<Changed>,
    /// Same rows, another order: the first position where they differ.
    pub reordered_at: Option<usize>,
    /// The columns rows are matched by, in the query's column order.
    pub key: Vec<String>,
    /// Every column, in the query's order, for display.
    pub columns: Vec<String>,
}

#[derive(Debug)]
pub struct Changed {
    pub key: Row,
    /// (column, expected, got) for each column whose value differs.
    pub fields: Vec<(String, Value, Value)>,
}

impl RowDiff {
    /// `columns` is the query's column order (camelCase, as in the rows), used for display.
    pub fn new(columns: &[String], expected: &[Value], got: &[Value]) -> Self {
        let expected: Vec<Row> = expected.iter().map(as_row).collect();
        let got: Vec<Row> = got.iter().map(as_row).collect();
        let mut order: Vec<String> = columns.to_vec();
        for r in expected.iter().chain(&got) {
            for c in r.keys() {
                if !order.contains(c) {
                    order.push(c.clone());
                }
            }
        }
        let in_all = |rows: &[Row], c: &str| rows.iter().all(|r| r.contains_key(c));
        let in_any = |rows: &[Row], c: &str| rows.iter().any(|r| r.contains_key(c));
        let added_columns: Vec<String> = order
            .iter()
            .filter(|c| in_any(&got, c) && !in_any(&expected, c))
            .cloned()
            .collect();
        let removed_columns: Vec<String> = order
            .iter()
            .filter(|c| in_any(&expected, c) && !in_any(&got, c))
            .cloned()
            .collect();
        let shared: Vec<String> = order
            .iter()
            .filter(|c| !added_columns.contains(c) && !removed_columns.contains(c))
            .cloned()
            .collect();
        let key: Vec<String> = shared
            .iter()
            .filter(|c| {
                in_all(&expected, c)
                    && in_all(&got, c)
                    && expected
                        .iter()
                        .chain(&got)
                        .all(|r| r[c.as_str()].is_string())
            })
            .cloned()
            .collect();
        let key_of = |r: &Row| -> Vec<Value> {
            key.iter()
                .map(|c| r.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        };
        // Rows with the same key pair up in order, so duplicate keys still diff sensibly.
        let mut got_by_key: BTreeMap<String, VecDeque<&Row>> = BTreeMap::new();
        for r in &got {
            got_by_key
                .entry(Value::from(key_of(r)).to_string())
                .or_default()
                .push_back(r);
        }
        let mut diff = Self {
            expected_rows: expected.len(),
            got_rows: got.len(),
            added_columns,
            removed_columns,
            key: key.clone(),
            columns: order.clone(),
            ..Self::default()
        };
        for e in &expected {
            let k = Value::from(key_of(e)).to_string();
            match got_by_key.get_mut(&k).and_then(VecDeque::pop_front) {
                None => diff.missing.push(e.clone()),
                Some(g) => {
                    let fields: Vec<_> = shared
                        .iter()
                        .filter(|c| !key.contains(c))
                        .filter_map(|c| {
                            let (ev, gv) = (field(e, c), field(g, c));
                            (ev != gv).then(|| (c.clone(), ev, gv))
                        })
                        .collect();
                    if !fields.is_empty() {
                        diff.changed.push(Changed {
                            key: project(e, &key),
                            fields,
                        });
                    }
                }
            }
        }
        // Unexpected rows in the query's output order.
        for r in &got {
            let k = Value::from(key_of(r)).to_string();
            if let Some(left) = got_by_key.get_mut(&k)
                && left.front().is_some_and(|f| std::ptr::eq(*f, r))
            {
                left.pop_front();
                diff.unexpected.push(r.clone());
            }
        }
        if diff.is_empty() && expected != got {
            diff.reordered_at = expected.iter().zip(&got).position(|(e, g)| e != g);
        }
        diff
    }

    /// True when the same rows came out, in any order: the runtime never depends on a batch's
    /// row order, and a query without `ORDER BY` may vary between runs.
    pub fn is_empty(&self) -> bool {
        self.added_columns.is_empty()
            && self.removed_columns.is_empty()
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.changed.is_empty()
    }

    fn counts(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.changed.len(), "changed"),
            (self.missing.len(), "missing"),
            (self.unexpected.len(), "unexpected"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            "no row differs".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn as_row(v: &Value) -> Row {
    match v {
        Value::Object(m) => m.clone(),
        other => Map::from_iter([("value".to_owned(), other.clone())]),
    }
}

fn field(r: &Row, c: &str) -> Value {
    r.get(c).cloned().unwrap_or(Value::Null)
}

fn project(r: &Row, columns: &[String]) -> Row {
    columns
        .iter()
        .filter_map(|c| r.get(c).map(|v| (c.clone(), v.clone())))
        .collect()
}

/// `a=1 b="x"` with text unquoted, which is how a data engineer reads a row.
fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_row(r: &Row, order: &[String]) -> String {
    let mut cols: Vec<&String> = order.iter().filter(|c| r.contains_key(*c)).collect();
    cols.extend(r.keys().filter(|c| !order.contains(c)));
    cols.iter()
        .map(|c| format!("{c}={}", show_value(&r[c.as_str()])))
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for RowDiff {
    /// Indented lines meant to follow a `FAIL <name>` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "    expected {} rows, got {}: {}",
            self.expected_rows,
            self.got_rows,
            self.counts()
        )?;
        if !self.added_columns.is_empty() {
            writeln!(
                f,
                "    new columns (not in the expected rows): {}",
                self.added_columns.join(", ")
            )?;
        }
        if !self.removed_columns.is_empty() {
            writeln!(
                f,
                "    columns no longer produced: {}",
                self.removed_columns.join(", ")
            )?;
        }
        if let Some(at) = self.reordered_at {
            writeln!(
                f,
                "    the same rows in another order (first at row {}): check the query's ORDER BY",
                at + 1
            )?;
        }
        let mut shown = 0;
        for c in &self.changed {
            if shown == SHOWN {
                break;
            }
            shown += 1;
            writeln!(f, "    changed     {}", show_row(&c.key, &self.key))?;
            for (col, e, g) in &c.fields {
                writeln!(
                    f,
                    "                  {col}: expected {}, got {}",
                    show_value(e),
                    show_value(g)
                )?;
            }
        }
        for (label, rows) in [("missing", &self.missing), ("unexpected", &self.unexpected)] {
            for r in rows {
                if shown == SHOWN {
                    break;
                }
                shown += 1;
                writeln!(f, "    {label:<11} {}", show_row(r, &self.columns))?;
            }
        }
        let total = self.changed.len() + self.missing.len() + self.unexpected.len();
        if total > shown {
            writeln!(f, "    … and {} more rows", total - shown)?;
        }
        Ok(())
    }
}
