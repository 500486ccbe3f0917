//! Sequences on a sharded database: every shard has its own copy of each sequence
//! (DDL creates it everywhere), so `setval` must set every copy, or a shard left behind
//! hands out values its rows already hold (a restored dump's
//! `SELECT pg_catalog.setval('public.t_id_seq', n, true)` is the common case).

use super::names::parts;
use sqlparser::ast::{Expr, Visit, Visitor};
use std::ops::ControlFlow;

/// Whether `node` calls PostgreSQL's `setval` (unqualified or as `pg_catalog.setval`)
/// anywhere, subqueries included.
pub(crate) fn calls_setval<V: Visit>(node: &V) -> bool {
    /// Stops at the first call of setval.
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Function(function) if is_setval(&parts(&function.name)) => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find).is_break()
}

fn is_setval(name: &[String]) -> bool {
    match name {
        [function] => function == "setval",
        [schema, function] => schema == "pg_catalog" && function == "setval",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn calls(sql: &str) -> bool {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        calls_setval(&statements)
    }

    #[test]
    fn finds_setval_however_written() {
        assert!(calls(
            "SELECT pg_catalog.setval('public.t_id_seq', 42, true)"
        ));
        assert!(calls("select SETVAL('s', 1)"));
        assert!(calls("SELECT \"pg_catalog\".\"setval\"('s', 1)"));
        assert!(calls("SELECT 1 WHERE setval('s', 1) > 0"));
        assert!(calls("SELECT (SELECT setval('s', 1))"));
        assert!(!calls("SELECT nextval('s')"));
        assert!(!calls("SELECT app.setval('s', 1)"));
        assert!(!calls("SELECT \"SETVAL\"('s', 1)"));
        assert!(!calls("SELECT 'setval'"));
    }
}
