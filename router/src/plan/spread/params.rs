//! The `$n` parameters a statement uses: a rewrite for the shards must keep them all,
//! since the shards are sent the client's parameters unchanged.

use sqlparser::ast::{Value, ValueWithSpan, Visit, Visitor};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// The placeholders (`$1`, `$2`, …) in `node`, as written.
pub(crate) fn placeholders<V: Visit>(node: &V) -> BTreeSet<String> {
    struct Collect(BTreeSet<String>);
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
            if let Value::Placeholder(name) = &value.value {
                self.0.insert(name.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut collect = Collect(BTreeSet::new());
    let _ = node.visit(&mut collect);
    collect.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn finds_placeholders_anywhere() {
        let statements = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT $2 FROM t WHERE a IN (SELECT b FROM u WHERE c = $1) LIMIT $3::int",
        )
        .unwrap();
        let found: Vec<String> = placeholders(&statements).into_iter().collect();
        assert_eq!(found, ["$1", "$2", "$3"]);
    }
}
