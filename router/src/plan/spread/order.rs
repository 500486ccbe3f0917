//! ORDER BY of a fan-out query, as sort keys over result columns.

use super::super::error::{unsupported, PlanError};
use super::super::spec::{ColumnRef, SortKey};
use sqlparser::ast::{Expr, OrderBy, OrderByKind, OrderBySort};

/// The sort keys of `order_by`; `column` finds (or appends) each expression's column.
pub(super) fn sort_keys(
    order_by: Option<&OrderBy>,
    mut column: impl FnMut(&Expr) -> Result<ColumnRef, PlanError>,
) -> Result<Vec<SortKey>, PlanError> {
    let Some(order_by) = order_by else {
        return Ok(Vec::new());
    };
    let OrderByKind::Expressions(items) = &order_by.kind else {
        return Err(unsupported("ORDER BY ALL is not PostgreSQL"));
    };
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let descending = match &item.options.sort {
            None | Some(OrderBySort::Asc) => false,
            Some(OrderBySort::Desc) => true,
            Some(OrderBySort::Using(_)) => {
                return Err(unsupported(
                    "ORDER BY … USING over several shards is not supported; use ASC or DESC",
                ))
            }
        };
        keys.push(SortKey {
            column: column(&item.expr)?,
            descending,
            // PostgreSQL sorts NULLs as larger than any value.
            nulls_first: item.options.nulls_first.unwrap_or(descending),
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{SetExpr, Statement};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn directions_and_nulls_follow_postgresql_defaults() {
        let sql = "SELECT a FROM t ORDER BY a, b DESC, c ASC NULLS FIRST, d DESC NULLS LAST";
        let Statement::Query(query) = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
        else {
            panic!()
        };
        assert!(matches!(*query.body, SetExpr::Select(_)));
        let mut n = 0;
        let keys = sort_keys(query.order_by.as_ref(), |_| {
            n += 1;
            Ok(ColumnRef::Visible(n - 1))
        })
        .unwrap();
        let flags: Vec<_> = keys.iter().map(|k| (k.descending, k.nulls_first)).collect();
        assert_eq!(
            flags,
            [(false, false), (true, true), (false, true), (true, false)]
        );
        assert_eq!(keys[3].column, ColumnRef::Visible(3));
    }
}
