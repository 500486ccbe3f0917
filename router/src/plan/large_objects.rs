//! Large objects on a sharded database: each shard keeps its own, and a large object is
//! found only on the shard that created it, whichever shard the next statement reaches.
//! The server-side functions that create, read or change them are refused (the
//! function call protocol, libpq's client-side `lo_*`, is refused by the data plane);
//! a `/* pgshard: shard=N */` hint still works on one shard's large objects.

use super::names::parts;
use sqlparser::ast::{Expr, Visit, Visitor};
use std::ops::ControlFlow;

/// PostgreSQL's server-side large object functions.
const FUNCTIONS: &[&str] = &[
    "lo_creat",
    "lo_create",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_open",
    "lo_close",
    "loread",
    "lowrite",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "lo_truncate",
    "lo_truncate64",
    "lo_get",
    "lo_put",
    "lo_from_bytea",
];

/// The large object function `node` calls, if any (unqualified or in `pg_catalog`).
pub(crate) fn large_object_call<V: Visit>(node: &V) -> Option<String> {
    /// Stops at the first large object function called, and keeps its name.
    struct Find(Option<String>);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(function) = expr {
                let name = parts(&function.name);
                let function = match name.as_slice() {
                    [function] => function,
                    [schema, function] if schema == "pg_catalog" => function,
                    _ => return ControlFlow::Continue(()),
                };
                if FUNCTIONS.contains(&function.as_str()) {
                    self.0 = Some(function.clone());
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut find = Find(None);
    let _ = node.visit(&mut find);
    find.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn call(sql: &str) -> Option<String> {
        large_object_call(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap())
    }

    #[test]
    fn finds_the_server_side_functions() {
        assert_eq!(
            call("SELECT pg_catalog.lo_create('16400')").as_deref(),
            Some("lo_create")
        );
        assert_eq!(
            call("SELECT lowrite(0, '\\x00')").as_deref(),
            Some("lowrite")
        );
        assert_eq!(
            call("INSERT INTO t (id, doc) VALUES (1, lo_from_bytea(0, 'x'))").as_deref(),
            Some("lo_from_bytea")
        );
        assert_eq!(call("SELECT app.lo_get(1)"), None);
        assert_eq!(call("SELECT 'lo_get(1)'"), None);
        assert_eq!(call("SELECT length(name) FROM users"), None);
    }
}
