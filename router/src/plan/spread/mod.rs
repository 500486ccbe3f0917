//! Fan-out SELECTs: the statement each shard is sent and how the merge makes one
//! answer of their rows, exactly as one server holding all rows would give it.

mod aggregate;
mod columns;
mod computed;
mod grouped;
mod having;
mod limit;
mod order;
pub(crate) mod params;

use super::error::{unsupported, PlanError};
use super::printing::print_checked;
use super::reads::Reads;
use super::spec::{RowMerge, ShardStatements};
use super::template::{Spread, SpreadMerge};
use aggregate::{first_aggregate, has_window_function};
use columns::Columns;
use limit::Limits;
use order::sort_keys;
use sqlparser::ast::{Distinct, GroupByExpr, Query, Select, SetExpr, Statement};

/// Plans a SELECT whose sharded tables all occur in its top-level FROM (`scope`),
/// linked on their keys, for running on several shards.
pub(crate) fn select(query: &Query, reads: &Reads, scope: usize) -> Result<Spread, PlanError> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(unsupported("expected a SELECT"));
    };
    check(query, select)?;
    let grouped = select.distinct == Some(Distinct::Distinct)
        || select.having.is_some()
        || !matches!(&select.group_by, GroupByExpr::Expressions(exprs, _) if exprs.is_empty())
        || first_aggregate(&select.projection).is_some()
        // An aggregate in ORDER BY alone makes it an aggregate query too.
        || first_aggregate(&query.order_by).is_some();
    let mut out = query.clone();
    let (merge, limits) = if grouped {
        grouped::rewrite(&mut out, select, reads, scope)?
    } else {
        plain(&mut out, select)?
    };
    let missing: Vec<String> = params::placeholders(query)
        .difference(&params::placeholders(&out))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(unsupported(format!(
            "parameters {} are in a clause the merge applies (HAVING, ORDER BY, LIMIT or OFFSET of a grouped query, or OFFSET without LIMIT) over several shards; use constants there",
            missing.join(", ")
        )));
    }
    let statements = if out == *query {
        ShardStatements::Original
    } else {
        ShardStatements::Rewritten(print_checked(&Statement::Query(Box::new(out)))?)
    };
    Ok(Spread {
        statements,
        merge: SpreadMerge::Rows {
            merge: Box::new(merge),
            limit: limits.limit,
            offset: limits.offset,
        },
    })
}

/// Refuses what no merge can make exact.
fn check(query: &Query, select: &Select) -> Result<(), PlanError> {
    if let Some(Distinct::On(_)) = &select.distinct {
        return Err(unsupported(
            "SELECT DISTINCT ON over a sharded table spanning several shards is not supported; filter on the shard key to run on one shard",
        ));
    }
    if select.into.is_some() {
        return Err(unsupported(
            "SELECT INTO over a sharded table is not supported; create the table and INSERT into it",
        ));
    }
    if !select.named_window.is_empty()
        || has_window_function(&select.projection)
        || has_window_function(&query.order_by)
    {
        return Err(unsupported(
            "window functions over a sharded table spanning several shards cannot be merged exactly; filter on the shard key to run on one shard",
        ));
    }
    Ok(())
}

/// Rows taken as they come, in ORDER BY order, with the limit pushed down.
fn plain(out: &mut Query, select: &Select) -> Result<(RowMerge, Limits), PlanError> {
    let limits = Limits::read(out)?;
    let mut columns = Columns::new(&select.projection);
    let order_by = sort_keys(out.order_by.as_ref(), |e| {
        if let Some(column) = Columns::position(e) {
            return Ok(column);
        }
        match columns.named(e).or_else(|| columns.equal(e)).cloned() {
            Some(item) => Ok(columns.column_of(&item)),
            None => Ok(columns.hide(e.clone())),
        }
    })?;
    out.limit_clause = limits.pushed_down();
    out.fetch = None;
    if let SetExpr::Select(shard_select) = out.body.as_mut() {
        shard_select.projection.extend(columns.hidden_items());
    }
    let merge = RowMerge {
        hidden_columns: columns.hidden.len(),
        visible_columns: columns.visible_count(),
        order_by,
        ..RowMerge::default()
    };
    Ok((merge, limits))
}
