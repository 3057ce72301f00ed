//! What the read-only guard ([`crate::check_read_only`]) looks for inside a query.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};

/// Whether a query, or any query inside it (a CTE, a subquery, a side of a `UNION`), is
/// `SELECT .. INTO t`: it parses as a query but creates a table.
pub(crate) fn selects_into(statement: &Statement) -> bool {
    struct FindInto;
    impl Visitor for FindInto {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if has_into(&query.body) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    fn has_into(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(s) => s.into.is_some(),
            SetExpr::SetOperation { left, right, .. } => has_into(left) || has_into(right),
            _ => false,
        }
    }
    statement.visit(&mut FindInto).is_break()
}
