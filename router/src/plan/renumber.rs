//! Renumbering `$n` parameters in a statement built from part of the client's.

use super::key::placeholder_index;
use sqlparser::ast::{Expr, Value, ValueWithSpan, Visit, VisitMut, VisitorMut};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// Renumbers the parameters of `node` to `$1`, `$2`, … in the order of the client's
/// numbers, and returns the client's 0-based index of each new one.
pub(crate) fn renumber<V: Visit + VisitMut>(node: &mut V) -> Vec<usize> {
    let used: BTreeSet<usize> = super::spread::params::placeholders(node)
        .iter()
        .filter_map(|name| placeholder_index(&Expr::value(Value::Placeholder(name.clone()))))
        .collect();
    let order: Vec<usize> = used.into_iter().collect();
    struct Rename<'a>(&'a [usize]);
    impl VisitorMut for Rename<'_> {
        type Break = ();
        fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
            if let Value::Placeholder(name) = &value.value {
                let index = placeholder_index(&Expr::value(Value::Placeholder(name.clone())));
                if let Some(new) = index.and_then(|i| self.0.iter().position(|&o| o == i)) {
                    value.value = Value::Placeholder(format!("${}", new + 1));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Rename(&order));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn renumbers_in_client_order() {
        let mut statements = Parser::parse_sql(
            &PostgreSqlDialect {},
            "INSERT INTO t (a, b) VALUES ($5, $3::int) RETURNING $5",
        )
        .unwrap();
        assert_eq!(renumber(&mut statements), [2, 4]);
        assert_eq!(
            statements[0].to_string(),
            "INSERT INTO t (a, b) VALUES ($2, $1::INT) RETURNING $2"
        );
    }
}
