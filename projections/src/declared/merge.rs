//! A declared table's partial rows: decoded from the output topic's Avro records by the
//! registered schema (fields found by the camelCase names the processor writes), merged per
//! key within a batch (one row per key per statement), then staged with binary `COPY` and
//! merged with the same rules in PostgreSQL.

use std::collections::HashMap;

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use muster_processors::sql::table::{ColumnType, Merge, TableSpec};
use muster_runtime::projection::Staging;
use muster_runtime::projection::refusal::BadData;
use tokio_postgres::types::{ToSql, Type};

use super::ddl::quote;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// `integer` and `bigint`.
    Int(i64),
    Double(f64),
    Text(String),
    /// Milliseconds since the epoch.
    Time(i64),
    Bool(bool),
}

/// A key cell that can be hashed (a double by its bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyPart {
    Int(i64),
    Bits(u64),
    Text(String),
    Bool(bool),
}

fn key_part(c: &Cell) -> Option<KeyPart> {
    Some(match c {
        Cell::Null => return None,
        Cell::Int(i) | Cell::Time(i) => KeyPart::Int(*i),
        Cell::Double(d) => KeyPart::Bits(d.to_bits()),
        Cell::Text(s) => KeyPart::Text(s.clone()),
        Cell::Bool(b) => KeyPart::Bool(*b),
    })
}

/// Reads one record as a row of `spec`'s columns. A field the record lacks is NULL (records
/// written before a column was added).
pub fn decode(spec: &TableSpec, fields: &[String], value: Value) -> Result<Vec<Cell>, String> {
    let Value::Record(record) = value else {
        return Err("not an Avro record".into());
    };
    let mut by_name: HashMap<String, Value> = record.into_iter().collect();
    spec.columns
        .iter()
        .zip(fields)
        .map(|(c, field)| {
            let v = match by_name.remove(field) {
                Some(Value::Union(_, inner)) => *inner,
                Some(v) => v,
                None => Value::Null,
            };
            let cell = match (c.ty, v) {
                (_, Value::Null) => Cell::Null,
                (ColumnType::Integer | ColumnType::Bigint, Value::Int(i)) => Cell::Int(i.into()),
                (ColumnType::Integer | ColumnType::Bigint, Value::Long(i)) => Cell::Int(i),
                (ColumnType::Double, Value::Double(d)) => Cell::Double(d),
                (ColumnType::Double, Value::Float(f)) => Cell::Double(f.into()),
                (ColumnType::Double, Value::Long(i)) => Cell::Double(i as f64),
                (ColumnType::Double, Value::Int(i)) => Cell::Double(i.into()),
                (ColumnType::Text, Value::String(s)) => Cell::Text(s),
                (ColumnType::Timestamptz, Value::TimestampMillis(t) | Value::Long(t)) => {
                    Cell::Time(t)
                }
                (ColumnType::Timestamptz, Value::TimestampMicros(t)) => Cell::Time(t / 1000),
                (ColumnType::Boolean, Value::Boolean(b)) => Cell::Bool(b),
                (ty, other) => {
                    return Err(format!(
                        "field {field}: a {} column cannot hold {other:?}",
                        ty.sql()
                    ));
                }
            };
            if cell == Cell::Null && spec.key.contains(&c.name) {
                return Err(format!("key field {field} is null"));
            }
            Ok(cell)
        })
        .collect()
}

fn overflow(col: &str) -> BadData {
    BadData(format!("the sum of {col} is out of range"))
}

/// `new` merged into `acc` by `rule`, as the upsert does it in PostgreSQL.
fn merge_cell(acc: &mut Cell, new: Cell, rule: Merge, col: &str) -> Result<(), BadData> {
    if rule == Merge::Last {
        *acc = new;
        return Ok(());
    }
    let merged = match (&*acc, new) {
        (_, Cell::Null) => return Ok(()),
        (Cell::Null, n) => n,
        (Cell::Int(a), Cell::Int(b)) => Cell::Int(match rule {
            Merge::Sum => a.checked_add(b).ok_or_else(|| overflow(col))?,
            Merge::Max => (*a).max(b),
            _ => (*a).min(b),
        }),
        (Cell::Double(a), Cell::Double(b)) => Cell::Double(match rule {
            Merge::Sum => a + b,
            Merge::Max => a.max(b),
            _ => a.min(b),
        }),
        (Cell::Time(a), Cell::Time(b)) => Cell::Time(match rule {
            Merge::Max => (*a).max(b),
            _ => (*a).min(b),
        }),
        (a, b) => return Err(BadData(format!("{col}: cannot merge {a:?} with {b:?}"))),
    };
    *acc = merged;
    Ok(())
}

/// The rows of a batch (in log order) merged per key, in order of first appearance.
pub fn merge_rows(spec: &TableSpec, rows: Vec<Vec<Cell>>) -> Result<Vec<Vec<Cell>>, BadData> {
    let key_at: Vec<usize> = spec
        .key
        .iter()
        .filter_map(|k| spec.columns.iter().position(|c| &c.name == k))
        .collect();
    let mut index: HashMap<Vec<Option<KeyPart>>, usize> = HashMap::new();
    let mut out: Vec<Vec<Cell>> = Vec::new();
    for row in rows {
        let key: Vec<Option<KeyPart>> = key_at.iter().map(|i| key_part(&row[*i])).collect();
        match index.get(&key) {
            Some(&at) => {
                for ((acc, new), c) in out[at].iter_mut().zip(row).zip(&spec.columns) {
                    if let Some(rule) = c.merge {
                        merge_cell(acc, new, rule, &c.name)?;
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// The table's staging: every column staged, and the merge by each column's rule.
pub fn staging(spec: &TableSpec) -> Staging {
    let cols: Vec<(String, Type)> = spec
        .columns
        .iter()
        .map(|c| (quote(&c.name), pg_type(c.ty)))
        .collect();
    let cols: Vec<(&str, Type)> = cols.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    Staging::new(&quote(&spec.name), &cols, &on_conflict(spec))
}

fn pg_type(ty: ColumnType) -> Type {
    match ty {
        ColumnType::Integer => Type::INT4,
        ColumnType::Bigint => Type::INT8,
        ColumnType::Double => Type::FLOAT8,
        ColumnType::Text => Type::TEXT,
        ColumnType::Timestamptz => Type::TIMESTAMPTZ,
        ColumnType::Boolean => Type::BOOL,
    }
}

/// What a staged row whose key is stored does: each column with a rule merges by it.
pub fn on_conflict(spec: &TableSpec) -> String {
    let key: Vec<String> = spec.key.iter().map(|k| quote(k)).collect();
    let sets: Vec<String> = spec
        .columns
        .iter()
        .filter_map(|c| {
            let q = quote(&c.name);
            Some(match c.merge? {
                Merge::Sum => format!("{q} = coalesce(t.{q} + excluded.{q}, t.{q}, excluded.{q})"),
                Merge::Max => format!("{q} = greatest(t.{q}, excluded.{q})"),
                Merge::Min => format!("{q} = least(t.{q}, excluded.{q})"),
                Merge::Last => format!("{q} = excluded.{q}"),
            })
        })
        .collect();
    let action = if sets.is_empty() {
        "NOTHING".to_owned()
    } else {
        format!("UPDATE SET {}", sets.join(", "))
    };
    format!("ON CONFLICT ({}) DO {action}", key.join(", "))
}

/// A row's cells as the values its columns store, checked against their types.
pub fn values(
    spec: &TableSpec,
    row: &[Cell],
) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, BadData> {
    spec.columns
        .iter()
        .zip(row)
        .map(|(c, cell)| {
            let wrong = || BadData(format!("{}: unexpected {cell:?}", c.name));
            Ok(match (c.ty, cell) {
                (_, Cell::Null) => null(c.ty),
                (ColumnType::Integer, Cell::Int(v)) => {
                    Box::new(i32::try_from(*v).map_err(|_| {
                        BadData(format!("{}: {v} is out of range for integer", c.name))
                    })?) as Box<dyn ToSql + Sync + Send>
                }
                (ColumnType::Bigint, Cell::Int(v)) => Box::new(*v),
                (ColumnType::Double, Cell::Double(v)) => Box::new(*v),
                (ColumnType::Text, Cell::Text(v)) => Box::new(v.clone()),
                (ColumnType::Timestamptz, Cell::Time(ms)) => Box::new(
                    DateTime::<Utc>::from_timestamp_millis(*ms)
                        .ok_or_else(|| BadData(format!("{}: time {ms} is out of range", c.name)))?,
                ),
                (ColumnType::Boolean, Cell::Bool(v)) => Box::new(*v),
                _ => return Err(wrong()),
            })
        })
        .collect()
}

/// A NULL of the column's type (binary `COPY` checks each value's type).
fn null(ty: ColumnType) -> Box<dyn ToSql + Sync + Send> {
    match ty {
        ColumnType::Integer => Box::new(None::<i32>),
        ColumnType::Bigint => Box::new(None::<i64>),
        ColumnType::Double => Box::new(None::<f64>),
        ColumnType::Text => Box::new(None::<String>),
        ColumnType::Timestamptz => Box::new(None::<DateTime<Utc>>),
        ColumnType::Boolean => Box::new(None::<bool>),
    }
}

#[cfg(test)]
mod tests {
    use muster_processors::sql::table::Column;

    use super::*;

    fn spec() -> TableSpec {
        let col = |name: &str, ty, merge| Column {
            name: String::from(name),
            ty,
            nullable: true,
            merge,
        };
        TableSpec {
            name: "t".into(),
            columns: vec![
                col("event_id", ColumnType::Text, None),
                col("n", ColumnType::Bigint, Some(Merge::Sum)),
                col("peak", ColumnType::Double, Some(Merge::Max)),
                col("at", ColumnType::Timestamptz, Some(Merge::Min)),
                col("end", ColumnType::Text, Some(Merge::Last)),
            ],
            key: vec!["event_id".into()],
            time: None,
        }
    }

    #[test]
    fn partials_of_one_key_merge_by_their_rules_in_log_order() {
        use Cell::*;
        let rows = vec![
            vec![
                Text("a".into()),
                Int(2),
                Double(1.5),
                Time(50),
                Text("x".into()),
            ],
            vec![Text("b".into()), Int(1), Null, Time(10), Text("y".into())],
            vec![
                Text("a".into()),
                Null,
                Double(3.0),
                Time(20),
                Text("z".into()),
            ],
            vec![Text("a".into()), Int(5), Double(0.5), Null, Null],
        ];
        let merged = merge_rows(&spec(), rows).unwrap();
        assert_eq!(
            merged,
            vec![
                vec![Text("a".into()), Int(7), Double(3.0), Time(20), Null],
                vec![Text("b".into()), Int(1), Null, Time(10), Text("y".into())],
            ]
        );
        let big = vec![
            vec![Text("a".into()), Int(i64::MAX), Null, Null, Null],
            vec![Text("a".into()), Int(1), Null, Null, Null],
        ];
        assert_eq!(
            merge_rows(&spec(), big).unwrap_err().0,
            "the sum of n is out of range"
        );
    }

    #[test]
    fn the_merge_merges_each_column_by_its_rule() {
        let merge = staging(&spec()).merge_sql().to_owned();
        assert!(
            merge.ends_with(
                "INSERT INTO {schema}.\"t\" AS t (\"event_id\", \"n\", \"peak\", \"at\", \"end\") \
                 SELECT \"event_id\", \"n\", \"peak\", \"at\", \"end\" FROM s \
                 ON CONFLICT (\"event_id\") DO UPDATE SET \"n\" = coalesce(t.\"n\" + excluded.\"n\", t.\"n\", excluded.\"n\"), \
                 \"peak\" = greatest(t.\"peak\", excluded.\"peak\"), \"at\" = least(t.\"at\", excluded.\"at\"), \"end\" = excluded.\"end\""
            ),
            "{merge}"
        );
    }

    #[test]
    fn values_are_checked_against_their_columns_types() {
        use Cell::*;
        let mut s = spec();
        s.columns[1].ty = ColumnType::Integer;
        let row = [Text("a".into()), Int(1 << 40), Null, Null, Null];
        assert_eq!(
            values(&s, &row).err().unwrap().0,
            "n: 1099511627776 is out of range for integer"
        );
        let row = [Text("a".into()), Int(1), Text("x".into()), Null, Null];
        assert_eq!(
            values(&s, &row).err().unwrap().0,
            "peak: unexpected Text(\"x\")"
        );
        assert_eq!(
            values(&s, &[Text("a".into()), Null, Null, Time(5), Null])
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn records_decode_by_field_name_and_a_null_key_is_refused() {
        let fields: Vec<String> = ["eventId", "n", "peak", "at", "end"]
            .map(String::from)
            .to_vec();
        let v = Value::Record(vec![
            ("eventId".into(), Value::String("a".into())),
            ("n".into(), Value::Long(3)),
            (
                "at".into(),
                Value::Union(1, Box::new(Value::TimestampMillis(9))),
            ),
            ("end".into(), Value::Union(0, Box::new(Value::Null))),
        ]);
        assert_eq!(
            decode(&spec(), &fields, v).unwrap(),
            vec![
                Cell::Text("a".into()),
                Cell::Int(3),
                Cell::Null,
                Cell::Time(9),
                Cell::Null
            ]
        );
        let v = Value::Record(vec![("n".into(), Value::String("x".into()))]);
        assert_eq!(
            decode(&spec(), &fields, v).unwrap_err(),
            "key field eventId is null"
        );
    }
}
