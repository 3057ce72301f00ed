//! DataFusion filters as PostgreSQL conditions: what a scan pushes down, as parameterized SQL.

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, Operator};
use tokio_postgres::types::ToSql;

use super::columns::{Column, Kind};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
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
    pub(super) fn as_sql(&self) -> &(dyn ToSql + Sync) {
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
    pub(super) fn of(kind: Kind, v: &ScalarValue) -> Option<Self> {
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

pub(super) fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")
}

/// The longest `IN` list pushed down (a longer one stays in DataFusion).
const MAX_IN_LIST: usize = 1_000;

/// A scan's statement and the values bound to it.
#[derive(Debug, Clone)]
pub struct Select {
    pub sql: String,
    pub(super) params: Vec<Param>,
}

impl Select {
    /// `expr` as a condition in SQL, its values appended to `params` (`$n` in order), and
    /// whether PostgreSQL keeps exactly DataFusion's rows; `None` when it cannot be pushed.
    pub(super) fn condition(
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
