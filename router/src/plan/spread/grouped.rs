//! Fan-out queries whose rows are grouped after merging: GROUP BY, aggregates without
//! GROUP BY, and DISTINCT.
//!
//! Shards group their own rows (keeping the rows sent back few) and the merge
//! regroups the partial groups, combining each aggregate; HAVING, ORDER BY, LIMIT and
//! OFFSET only make sense on the merged groups, so they are taken off the shards'
//! statement and done by the merge. The shards sort their groups by the keys instead,
//! so that the merge meets each key's partial groups together.

use super::super::error::{unsupported, PlanError};
use super::super::names::ident;
use super::super::reads::Reads;
use super::super::spec::{Aggregate, ColumnRef, ComputedColumn, Grouping, RowMerge, SortKey};
use super::aggregate::{aggregate, check_call, first_aggregate, renamed, unmergeable, Agg};
use super::columns::Columns;
use super::computed::{output_name, refuse_expression, value_expr};
use super::having::predicate;
use super::limit::Limits;
use super::order::sort_keys;
use sqlparser::ast::{
    Distinct, Expr, Function, GroupByExpr, Ident, OrderBy, OrderByExpr, OrderByKind,
    OrderByOptions, OrderBySort, Query, Select, SelectItem, SetExpr, Value, Visit, Visitor,
};
use std::ops::ControlFlow;

/// Builds the grouping state of a select.
struct Grouper<'r> {
    columns: Columns,
    keys: Vec<ColumnRef>,
    /// GROUP BY expressions (and the items they name) and their columns.
    group_exprs: Vec<(Expr, ColumnRef)>,
    aggregates: Vec<Aggregate>,
    computed: Vec<ComputedColumn>,
    /// Expressions over aggregates in HAVING and ORDER BY that are no select item, and
    /// their hidden columns.
    hidden_computed: Vec<(Expr, ColumnRef)>,
    reads: &'r Reads<'r>,
    scope: usize,
}

/// Rewrites `out` (a copy of the client's query, whose body is `select`) for the
/// shards and returns the merge.
pub(super) fn rewrite(
    out: &mut Query,
    select: &Select,
    reads: &Reads,
    scope: usize,
) -> Result<(RowMerge, Limits), PlanError> {
    let limits = Limits::read(out)?;
    let columns = Columns::new(&select.projection);
    if columns.wildcard {
        return Err(unsupported(
            "SELECT * with GROUP BY, DISTINCT or aggregates over several shards is not supported; list the columns",
        ));
    }
    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs,
        _ => {
            return Err(unsupported(
                "GROUP BY ALL or WITH modifiers are not supported",
            ))
        }
    };
    if group_by
        .iter()
        .any(|g| matches!(g, Expr::GroupingSets(_) | Expr::Cube(_) | Expr::Rollup(_)))
    {
        return Err(unsupported(
            "GROUPING SETS, CUBE and ROLLUP over several shards are not supported; filter on the shard key to run on one shard",
        ));
    }
    let mut grouper = Grouper {
        columns,
        keys: Vec::new(),
        group_exprs: Vec::new(),
        aggregates: Vec::new(),
        computed: Vec::new(),
        hidden_computed: Vec::new(),
        reads,
        scope,
    };
    let distinct = select.distinct == Some(Distinct::Distinct);
    let mut projection = select.projection.clone();
    if distinct {
        if !group_by.is_empty()
            || select.having.is_some()
            || first_aggregate(&select.projection).is_some()
        {
            return Err(unsupported(
                "SELECT DISTINCT with GROUP BY or aggregates over several shards is not supported",
            ));
        }
        grouper.keys = (0..grouper.columns.items.len())
            .map(ColumnRef::Visible)
            .collect();
    } else {
        for expr in group_by {
            grouper.group_key(expr);
        }
        // No `*` here: one projection entry per item.
        for (i, slot) in projection.iter_mut().enumerate() {
            if let Some(item) = grouper.select_item(i)? {
                *slot = item;
            }
        }
    }
    let having = match &select.having {
        Some(having) => Some(predicate(having, &mut |e: &Expr| grouper.merged_column(e))?),
        None => None,
    };
    let order_by = sort_keys(out.order_by.as_ref(), |e| {
        if let Some(column) = Columns::position(e) {
            return Ok(column);
        }
        if let Some(index) = grouper
            .columns
            .named(e)
            .or_else(|| grouper.columns.equal(e))
            .and_then(|item| item.index)
        {
            return Ok(ColumnRef::Visible(index));
        }
        if distinct {
            return Err(unsupported(format!(
                "for SELECT DISTINCT, ORDER BY expressions must appear in select list: {e}"
            )));
        }
        grouper.merged_column(e)
    })?;
    projection.extend(grouper.columns.hidden_items());
    let SetExpr::Select(shard_select) = out.body.as_mut() else {
        return Err(unsupported("expected a SELECT"));
    };
    shard_select.projection = projection;
    shard_select.having = None;
    let sorted_by = key_order(&grouper.keys, &order_by);
    let visible = grouper.columns.items.len();
    out.order_by = shard_order(&sorted_by, visible);
    out.limit_clause = None;
    out.fetch = None;
    let merge = RowMerge {
        group: Some(Grouping {
            keys: grouper.keys,
            aggregates: grouper.aggregates,
            computed: grouper.computed,
            sorted_by,
        }),
        having,
        order_by,
        offset: 0,
        limit: None,
        hidden_columns: grouper.columns.hidden.len(),
        visible_columns: grouper.columns.visible_count(),
    };
    Ok((merge, limits))
}

/// The order the shards sort their groups in: the client's ORDER BY when it sorts by
/// keys only (then the merged groups need no sort of their own), then every other key
/// ascending.
fn key_order(keys: &[ColumnRef], order_by: &[SortKey]) -> Vec<SortKey> {
    let mut sorted: Vec<SortKey> = Vec::with_capacity(keys.len());
    if order_by.iter().all(|k| keys.contains(&k.column)) {
        for key in order_by {
            if !sorted.iter().any(|s| s.column == key.column) {
                sorted.push(*key);
            }
        }
    }
    for &column in keys {
        if !sorted.iter().any(|s| s.column == column) {
            sorted.push(SortKey {
                column,
                descending: false,
                nulls_first: false,
            });
        }
    }
    sorted
}

/// `ORDER BY` of the shards' statement for `sorted_by`, by output column position, with
/// PostgreSQL's defaults left unsaid; `None` without keys.
fn shard_order(sorted_by: &[SortKey], visible: usize) -> Option<OrderBy> {
    if sorted_by.is_empty() {
        return None;
    }
    let items = sorted_by
        .iter()
        .map(|key| {
            let position = match key.column {
                ColumnRef::Visible(i) => i + 1,
                ColumnRef::Hidden(i) => visible + i + 1,
            };
            OrderByExpr {
                expr: Expr::value(Value::Number(position.to_string(), false)),
                options: OrderByOptions {
                    sort: key.descending.then_some(OrderBySort::Desc),
                    // NULLs go last ascending and first descending unless told.
                    nulls_first: (key.nulls_first != key.descending).then_some(key.nulls_first),
                },
                with_fill: None,
            }
        })
        .collect();
    Some(OrderBy {
        kind: OrderByKind::Expressions(items),
        interpolate: None,
    })
}

impl Grouper<'_> {
    fn add_key(&mut self, column: ColumnRef) {
        if !self.keys.contains(&column) {
            self.keys.push(column);
        }
    }

    /// A GROUP BY item: its column (hidden if not selected) is a key.
    fn group_key(&mut self, expr: &Expr) {
        let item = match Columns::position(expr) {
            Some(ColumnRef::Visible(n)) => self.columns.items.get(n),
            // GROUP BY takes a bare name as an input column before an output alias:
            // `lower(name) AS name … GROUP BY name` groups by the column.
            _ => self.columns.equal(expr).or_else(|| {
                self.columns
                    .named(expr)
                    .filter(|item| !mentions_column(&item.expr, expr))
            }),
        }
        .cloned();
        let column = match &item {
            Some(item) => {
                let column = self.columns.column_of(item);
                self.group_exprs.push((item.expr.clone(), column));
                column
            }
            None => self.columns.hide(expr.clone()),
        };
        self.group_exprs.push((expr.clone(), column));
        self.add_key(column);
    }

    /// Reads select item `i`; returns its replacement for the shards, if any.
    fn select_item(&mut self, i: usize) -> Result<Option<SelectItem>, PlanError> {
        let item = self.columns.items[i].clone();
        let column = ColumnRef::Visible(i);
        if let Some((agg, function)) = aggregate(&item.expr) {
            check_call(agg, function, |arg| self.is_key(arg))?;
            let shard_item = self.place_aggregate(agg, function, column, item.alias.clone());
            // A bare aggregate other than avg is sent as the client wrote it.
            return Ok((agg == Agg::Avg).then_some(shard_item));
        }
        if first_aggregate(&item.expr).is_some() {
            // The shards compute the expression's first aggregate in the item's place,
            // under the name PostgreSQL gives the whole expression.
            let name = item
                .alias
                .clone()
                .unwrap_or_else(|| Ident::with_quote('"', output_name(&item.expr)));
            let shard_item = self.compute(&item.expr, column, Some(name))?;
            return Ok(Some(shard_item));
        }
        let grouped = self.group_exprs.iter().any(|(e, _)| *e == item.expr);
        if grouped || is_column(&item.expr) || is_constant(&item.expr) {
            self.add_key(column);
            return Ok(None);
        }
        Err(unsupported(format!(
            "select item {} is neither a GROUP BY expression nor an aggregate; over several shards it cannot be merged",
            item.expr
        )))
    }

    /// Puts aggregate `function` in `column` (an avg's sum, with a hidden count) and
    /// returns the shards' select item for it, named `alias` if given.
    fn place_aggregate(
        &mut self,
        agg: Agg,
        function: &Function,
        column: ColumnRef,
        alias: Option<Ident>,
    ) -> SelectItem {
        if agg != Agg::Avg {
            self.aggregates.push(Aggregate {
                column,
                kind: agg.kind(column),
            });
            let call = Expr::Function(function.clone());
            return match alias {
                Some(alias) => SelectItem::ExprWithAlias { expr: call, alias },
                None => SelectItem::UnnamedExpr(call),
            };
        }
        let count_column = self.columns.hide_new(renamed(function, "count"));
        self.aggregates.push(Aggregate {
            column,
            kind: agg.kind(count_column),
        });
        SelectItem::ExprWithAlias {
            expr: renamed(function, "sum"),
            alias: alias.unwrap_or_else(|| Ident::new("avg")),
        }
    }

    /// Plans `expr`, an expression over aggregates, as a column the merge computes:
    /// its first aggregate goes in `column` (as the shards' select item returned, named
    /// `name`), every other operand is a combined aggregate or group key column.
    fn compute(
        &mut self,
        expr: &Expr,
        column: ColumnRef,
        name: Option<Ident>,
    ) -> Result<SelectItem, PlanError> {
        let mut slot = None;
        let value = value_expr(expr, &mut |leaf: &Expr| {
            if slot.is_none() {
                if let Some((agg, function)) = aggregate(leaf) {
                    check_call(agg, function, |arg| self.is_key(arg))?;
                    slot = Some(self.place_aggregate(agg, function, column, name.clone()));
                    return Ok(column);
                }
            }
            self.merged_column(leaf)
        })?;
        let shard_item = slot.ok_or_else(|| refuse_expression(expr))?;
        self.computed.push(ComputedColumn {
            column,
            expr: value,
        });
        Ok(shard_item)
    }

    /// The key argument of count(DISTINCT key).
    fn is_key(&self, expr: &Expr) -> bool {
        self.reads.key_of(self.scope, expr).is_some()
    }

    /// The merged column of an aggregate or group key in HAVING or ORDER BY,
    /// appending a hidden one if needed.
    fn merged_column(&mut self, expr: &Expr) -> Result<ColumnRef, PlanError> {
        if let Some((agg, function)) = aggregate(expr) {
            if let Some(column) = self.existing_aggregate(expr) {
                return Ok(column);
            }
            check_call(agg, function, |arg| self.is_key(arg))?;
            return Ok(self.hidden_aggregate(agg, function, expr));
        }
        if first_aggregate(expr).is_some() {
            if let Some(column) = self.existing_aggregate(expr) {
                return Ok(column);
            }
            if let Some((_, column)) = self.hidden_computed.iter().find(|(e, _)| e == expr) {
                return Ok(*column);
            }
            let column = self.columns.hide_new(Expr::Value(Value::Null.into()));
            let ColumnRef::Hidden(index) = column else {
                return Err(refuse_expression(expr));
            };
            let shard_expr = match self.compute(expr, column, None)? {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => return Err(refuse_expression(expr)),
            };
            // The hidden column holds the expression's first aggregate.
            if let Some(hidden) = self.columns.hidden.get_mut(index) {
                *hidden = shard_expr;
            }
            self.hidden_computed.push((expr.clone(), column));
            return Ok(column);
        }
        if let Some(name) = first_aggregate(expr) {
            return Err(unmergeable(&name, &format!(" inside {expr}")));
        }
        if let Some((_, column)) = self.group_exprs.iter().find(|(e, _)| e == expr) {
            return Ok(*column);
        }
        if let Some(item) = self.columns.equal(expr) {
            let column = ColumnRef::Visible(item.index.unwrap_or_default());
            if self.keys.contains(&column) {
                return Ok(column);
            }
        }
        Err(unsupported(format!(
            "{expr} is neither an aggregate nor a GROUP BY expression; over several shards it cannot be evaluated after merging"
        )))
    }

    /// A new hidden column for aggregate `call` (an avg's sum, with another for its
    /// count), combined by the merge.
    fn hidden_aggregate(&mut self, agg: Agg, function: &Function, call: &Expr) -> ColumnRef {
        if agg == Agg::Avg {
            let sum = self.columns.hide_new(renamed(function, "sum"));
            let count = self.columns.hide_new(renamed(function, "count"));
            self.aggregates.push(Aggregate {
                column: sum,
                kind: agg.kind(count),
            });
            return sum;
        }
        // Never an equal hidden column: one holding the same call is an avg's count or a
        // wrapped aggregate, not this aggregate's merged value.
        let column = self.columns.hide_new(call.clone());
        self.aggregates.push(Aggregate {
            column,
            kind: agg.kind(column),
        });
        column
    }

    /// A select item (or hidden column) already holding this aggregate (or expression
    /// over aggregates: only a select item that is the same expression holds it).
    fn existing_aggregate(&self, expr: &Expr) -> Option<ColumnRef> {
        let visible = self
            .columns
            .items
            .iter()
            .find(|item| item.expr == *expr)
            .and_then(|item| item.index)
            .map(ColumnRef::Visible);
        let hidden = self
            .columns
            .hidden
            .iter()
            .enumerate()
            .map(|(i, e)| (ColumnRef::Hidden(i), e))
            .find(|(column, e)| {
                *e == expr
                    && self.aggregates.iter().any(|a| a.column == *column)
                    && !self.computed.iter().any(|c| c.column == *column)
            })
            .map(|(column, _)| column);
        visible
            .filter(|column| self.aggregates.iter().any(|a| a.column == *column))
            .or(hidden)
    }
}

/// Whether `expr` uses a column named like the bare name `name`.
fn mentions_column(expr: &Expr, name: &Expr) -> bool {
    let Expr::Identifier(name) = name else {
        return false;
    };
    let name = ident(name);
    let mut find = FindColumn { name: &name };
    expr.visit(&mut find).is_break()
}

/// Stops at a column named `name` (bare or as a qualified name's last part).
struct FindColumn<'a> {
    name: &'a str,
}

impl Visitor for FindColumn<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let column = match expr {
            Expr::Identifier(i) => Some(i),
            Expr::CompoundIdentifier(parts) => parts.last(),
            _ => None,
        };
        if column.is_some_and(|c| ident(c) == self.name) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// A column reference: functionally dependent on the group keys or an error on the
/// server, so it can be a merge key.
fn is_column(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(inner) => is_column(inner),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        _ => false,
    }
}

/// A literal, equal on every shard.
fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => is_constant(inner),
        Expr::UnaryOp { expr: inner, .. } => is_constant(inner),
        Expr::Value(value) => !matches!(value.value, Value::Placeholder(_)),
        Expr::TypedString(_) => true,
        _ => false,
    }
}
