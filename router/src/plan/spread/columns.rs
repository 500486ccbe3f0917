//! The select list of a fan-out query: which result column an expression is, and the
//! hidden columns the rewrite appends.

use super::super::names::{ident, last};
use super::super::spec::ColumnRef;
use sqlparser::ast::{Expr, Ident, SelectItem, Value};

/// One select-list expression.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub expr: Expr,
    pub alias: Option<Ident>,
    /// The column's position, unknown after a `*`.
    pub index: Option<usize>,
}

/// The select list and the hidden columns appended to it.
#[derive(Debug, Default)]
pub(super) struct Columns {
    pub items: Vec<Item>,
    /// The list has a `*` or `t.*`.
    pub wildcard: bool,
    pub hidden: Vec<Expr>,
}

/// The prefix of hidden columns' names.
pub(super) const HIDDEN_PREFIX: &str = "pgshard_hidden_";

impl Columns {
    pub fn new(projection: &[SelectItem]) -> Columns {
        let mut columns = Columns::default();
        for item in projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(expr) => (expr, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                _ => {
                    columns.wildcard = true;
                    continue;
                }
            };
            let index = (!columns.wildcard).then_some(columns.items.len());
            columns.items.push(Item {
                expr: expr.clone(),
                alias,
                index,
            });
        }
        columns
    }

    /// `ORDER BY 2` or `GROUP BY 2`: the 1-based position as a column.
    /// How many columns the client gets, unless a `*` hides it.
    pub fn visible_count(&self) -> Option<usize> {
        (!self.wildcard).then_some(self.items.len())
    }

    pub fn position(expr: &Expr) -> Option<ColumnRef> {
        match expr {
            Expr::Value(value) => match &value.value {
                Value::Number(digits, false) => digits
                    .parse::<usize>()
                    .ok()
                    .map(|n| ColumnRef::Visible(n.saturating_sub(1))),
                _ => None,
            },
            _ => None,
        }
    }

    /// The item at a known position that is `expr`.
    pub fn equal(&self, expr: &Expr) -> Option<&Item> {
        self.items
            .iter()
            .find(|item| item.index.is_some() && item.expr == *expr)
    }

    /// The item whose output name (alias, or the name PostgreSQL gives it) is the
    /// bare name `expr`, as ORDER BY matches output columns first.
    pub fn named(&self, expr: &Expr) -> Option<&Item> {
        let Expr::Identifier(name) = expr else {
            return None;
        };
        let name = ident(name);
        self.items
            .iter()
            .find(|item| output_name(item).is_some_and(|n| n == name))
    }

    /// An item's column, or a hidden copy of its expression when its position is
    /// unknown (after a `*`).
    pub fn column_of(&mut self, item: &Item) -> ColumnRef {
        match item.index {
            Some(index) => ColumnRef::Visible(index),
            None => self.hide(item.expr.clone()),
        }
    }

    /// Appends `expr` as a hidden column (once).
    pub fn hide(&mut self, expr: Expr) -> ColumnRef {
        let index = match self.hidden.iter().position(|e| *e == expr) {
            Some(index) => index,
            None => {
                self.hidden.push(expr);
                self.hidden.len() - 1
            }
        };
        ColumnRef::Hidden(index)
    }

    /// A new hidden column even if an equal one exists (the avg's count).
    pub fn hide_new(&mut self, expr: Expr) -> ColumnRef {
        self.hidden.push(expr);
        ColumnRef::Hidden(self.hidden.len() - 1)
    }

    /// The select items to append for the hidden columns.
    pub fn hidden_items(&self) -> Vec<SelectItem> {
        self.hidden
            .iter()
            .enumerate()
            .map(|(i, expr)| SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::new(format!("{HIDDEN_PREFIX}{i}")),
            })
            .collect()
    }
}

/// The column name PostgreSQL gives an item: its alias, a column's name, a function's
/// name.
pub(super) fn output_name(item: &Item) -> Option<String> {
    if let Some(alias) = &item.alias {
        return Some(ident(alias));
    }
    expr_name(&item.expr)
}

fn expr_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(name) => Some(ident(name)),
        Expr::CompoundIdentifier(names) => names.last().map(ident),
        Expr::Function(function) => Some(last(&function.name)),
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => expr_name(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{SetExpr, Statement};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn columns(sql: &str) -> Columns {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let Statement::Query(query) = statement else {
            panic!()
        };
        let SetExpr::Select(select) = *query.body else {
            panic!()
        };
        Columns::new(&select.projection)
    }

    fn expr(sql: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn finds_items_by_name_expression_and_position() {
        let mut cols = columns("SELECT id, u.Name AS n, count(*), *, lower(x) AS l FROM u");
        assert!(cols.wildcard);
        assert_eq!(cols.named(&expr("N")).and_then(|i| i.index), Some(1));
        assert_eq!(cols.named(&expr("count")).and_then(|i| i.index), Some(2));
        assert_eq!(cols.equal(&expr("id")).and_then(|i| i.index), Some(0));
        assert_eq!(Columns::position(&expr("2")), Some(ColumnRef::Visible(1)));
        let l = cols.named(&expr("l")).unwrap().clone();
        assert_eq!(cols.column_of(&l), ColumnRef::Hidden(0));
        assert_eq!(cols.hide(expr("lower(x)")), ColumnRef::Hidden(0));
        assert_eq!(
            cols.hidden_items()[0].to_string(),
            "lower(x) AS pgshard_hidden_0"
        );
    }
}
