//! PostgreSQL columns as Arrow: which types a projection table's columns map to, and rows
//! turned into a record batch.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::Result;
use datafusion::logical_expr::Operator;
use tokio_postgres::Row;

use super::filters::epoch;

/// How a PostgreSQL column becomes an Arrow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) fn of(udt: &str) -> Self {
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

    pub(super) fn arrow(self) -> DataType {
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
pub(super) struct Column {
    pub(super) name: String,
    pub(super) kind: Kind,
    /// PostgreSQL's type name (`udt_name`).
    pub(super) udt: String,
    /// What the view reads instead of the column itself (a redaction); never filtered on.
    pub(super) read: Option<String>,
}

impl Column {
    pub(super) fn quoted(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }

    /// How a filter on this column pushes down: `None` when PostgreSQL's comparison could keep
    /// other rows than DataFusion's (floats' signed zeros, `bpchar`'s padding, jsonb as text,
    /// collation order of text), `Some(false)` when it keeps at least DataFusion's rows (`name`
    /// truncates long literals).
    pub(super) fn pushdown(&self, op: Operator) -> Option<bool> {
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

pub(super) fn to_batch(schema: &SchemaRef, kinds: &[Kind], rows: &[Row]) -> Result<RecordBatch> {
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
