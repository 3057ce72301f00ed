//! Typed queries on the read models the projections keep in PostgreSQL. Each read model is
//! queried here once, and rows are read by column name, so a route never depends on the
//! position of a column in someone else's `SELECT`.

pub mod alerts;
pub mod dead_letters;
pub mod events;
pub mod health;
pub mod reader;
pub mod search;
pub mod series;

pub use reader::Reader;
use tokio_postgres::types::FromSql;

use crate::problem::Problem;

/// A pooled connection; statements prepared on it are cached per connection.
pub type Client = deadpool_postgres::Object;

/// The column `name` of `row`; a missing column or a type mismatch is a bug in the query, so
/// it answers 500 rather than 503.
pub(crate) fn column<'a, T: FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    name: &str,
) -> Result<T, Problem> {
    row.try_get(name)
        .map_err(|e| Problem::internal(format!("column {name}: {e}")))
}

/// A text column parsed into a domain value (`FromStr`); an unknown value is a 500 naming it.
pub(crate) fn parsed<T>(row: &tokio_postgres::Row, name: &str) -> Result<T, Problem>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    column::<&str>(row, name)?
        .parse()
        .map_err(|e| Problem::internal(format!("column {name}: {e}")))
}

/// `rows` cut to `max`, and whether there were more (queries ask for one row past the cap).
pub fn capped<T>(mut rows: Vec<T>, max: usize) -> (Vec<T>, bool) {
    let truncated = rows.len() > max;
    rows.truncate(max);
    (rows, truncated)
}
