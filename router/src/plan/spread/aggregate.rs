//! Aggregate calls in a fan-out query: which ones merge exactly, and how.

use super::super::error::{unsupported, PlanError};
use super::super::names::{last, parts};
use super::super::spec::AggregateKind;
use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Visit,
    Visitor,
};
use std::ops::ControlFlow;

/// An aggregate whose per-shard results combine into the exact result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    BoolAnd,
    BoolOr,
}

impl Agg {
    /// The merge for this aggregate; avg's count column is filled in by the caller.
    pub fn kind(self, count_column: super::super::spec::ColumnRef) -> AggregateKind {
        match self {
            Agg::Count => AggregateKind::Count,
            Agg::Sum => AggregateKind::Sum,
            Agg::Min => AggregateKind::Min,
            Agg::Max => AggregateKind::Max,
            Agg::Avg => AggregateKind::Avg { count_column },
            Agg::BoolAnd => AggregateKind::BoolAnd,
            Agg::BoolOr => AggregateKind::BoolOr,
        }
    }
}

/// PostgreSQL's built-in aggregates that cannot be merged from per-shard results.
const UNMERGEABLE: &[&str] = &[
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "json_agg_strict",
    "jsonb_agg_strict",
    "json_object_agg_strict",
    "jsonb_object_agg_strict",
    "json_object_agg_unique",
    "jsonb_object_agg_unique",
    "json_object_agg_unique_strict",
    "jsonb_object_agg_unique_strict",
    "json_arrayagg",
    "json_objectagg",
    "xmlagg",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "bit_and",
    "bit_or",
    "bit_xor",
    "range_agg",
    "range_intersect_agg",
    "any_value",
];

/// The function's name if it is a built-in aggregate (in `pg_catalog`).
fn aggregate_name(function: &Function) -> Option<String> {
    if function.over.is_some() {
        return None;
    }
    let parts = parts(&function.name);
    if parts.len() > 2 || (parts.len() == 2 && parts[0] != "pg_catalog") {
        return None;
    }
    let name = last(&function.name);
    let known = matches!(
        name.as_str(),
        "count" | "sum" | "min" | "max" | "avg" | "bool_and" | "bool_or" | "every"
    ) || UNMERGEABLE.contains(&name.as_str());
    known.then_some(name)
}

/// `expr` as a mergeable aggregate call, parentheses aside.
pub(super) fn aggregate(expr: &Expr) -> Option<(Agg, &Function)> {
    match expr {
        Expr::Nested(inner) => aggregate(inner),
        Expr::Function(function) => {
            let agg = match aggregate_name(function)?.as_str() {
                "count" => Agg::Count,
                "sum" => Agg::Sum,
                "min" => Agg::Min,
                "max" => Agg::Max,
                "avg" => Agg::Avg,
                "bool_and" | "every" => Agg::BoolAnd,
                "bool_or" => Agg::BoolOr,
                _ => return None,
            };
            Some((agg, function))
        }
        _ => None,
    }
}

/// The first aggregate call in `expr` outside subqueries.
pub(super) fn first_aggregate<V: Visit>(node: &V) -> Option<String> {
    struct Find {
        depth: usize,
    }
    impl Visitor for Find {
        type Break = String;
        fn pre_visit_query(&mut self, _: &sqlparser::ast::Query) -> ControlFlow<String> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &sqlparser::ast::Query) -> ControlFlow<String> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
            if let (0, Expr::Function(function)) = (self.depth, expr) {
                if let Some(name) = aggregate_name(function) {
                    return ControlFlow::Break(name);
                }
            }
            ControlFlow::Continue(())
        }
    }
    match node.visit(&mut Find { depth: 0 }) {
        ControlFlow::Break(name) => Some(name),
        ControlFlow::Continue(()) => None,
    }
}

/// Whether a window function (`… OVER (…)`) is called outside subqueries.
pub(super) fn has_window_function<V: Visit>(node: &V) -> bool {
    struct Find {
        depth: usize,
    }
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, _: &sqlparser::ast::Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &sqlparser::ast::Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match (self.depth, expr) {
                (0, Expr::Function(function)) if function.over.is_some() => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find { depth: 0 }).is_break()
}

/// The refusal for an aggregate that cannot be merged.
pub(super) fn unmergeable(name: &str, why: &str) -> PlanError {
    unsupported(format!(
        "{name}() over a sharded table spanning several shards cannot be merged exactly{why}; filter on the shard key to run on one shard"
    ))
}

/// Checks that a mergeable aggregate's call has no clause that breaks the merge;
/// `distinct_ok` tells whether its argument is a shard key (distinct per shard).
pub(super) fn check_call(
    agg: Agg,
    function: &Function,
    distinct_ok: impl Fn(&Expr) -> bool,
) -> Result<(), PlanError> {
    let name = last(&function.name);
    // FILTER is kept in each shard's call: every shard aggregates only the rows it
    // lets through, which merge like any other partial aggregate.
    if !function.within_group.is_empty() || function.null_treatment.is_some() {
        return Err(unmergeable(&name, " with WITHIN GROUP"));
    }
    let FunctionArguments::List(list) = &function.args else {
        return Err(unmergeable(&name, " without an argument list"));
    };
    if !list.clauses.is_empty() {
        return Err(unmergeable(&name, " with ORDER BY inside the call"));
    }
    if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
        let key_argument = match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => distinct_ok(arg),
            _ => false,
        };
        let exact = match agg {
            // Repeats of a value never change these.
            Agg::Min | Agg::Max | Agg::BoolAnd | Agg::BoolOr => true,
            // A shard key's value lives on one shard only, so the shards' distinct
            // values never overlap.
            Agg::Count | Agg::Sum | Agg::Avg => key_argument,
        };
        if !exact {
            return Err(unmergeable(
                &name,
                " with DISTINCT on a column other than the shard key",
            ));
        }
    }
    Ok(())
}

/// A copy of an aggregate call under another name (`avg(x)` as `sum(x)`), without
/// DISTINCT or ALL.
pub(super) fn renamed(function: &Function, name: &str) -> Expr {
    let mut call = function.clone();
    if let Some(part) = call.name.0.last_mut() {
        *part = sqlparser::ast::ObjectNamePart::Identifier(sqlparser::ast::Ident::new(name));
    }
    Expr::Function(call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn expr(sql: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn recognizes_aggregates() {
        assert_eq!(aggregate(&expr("count(*)")).map(|a| a.0), Some(Agg::Count));
        assert_eq!(
            aggregate(&expr("(pg_catalog.SUM(x))")).map(|a| a.0),
            Some(Agg::Sum)
        );
        assert_eq!(
            aggregate(&expr("every(b)")).map(|a| a.0),
            Some(Agg::BoolAnd)
        );
        assert!(aggregate(&expr("app.sum(x)")).is_none());
        assert!(aggregate(&expr("count(*) OVER ()")).is_none());
        assert_eq!(first_aggregate(&expr("1 + max(x)")).as_deref(), Some("max"));
        assert_eq!(
            first_aggregate(&expr("string_agg(a, ',')")).as_deref(),
            Some("string_agg")
        );
        assert_eq!(first_aggregate(&expr("(SELECT max(x) FROM t)")), None);
        assert!(has_window_function(&expr(
            "1 + row_number() OVER (ORDER BY a)"
        )));
        assert!(!has_window_function(&expr(
            "(SELECT rank() OVER () FROM t)"
        )));
    }

    #[test]
    fn checks_clauses() {
        let check = |sql| {
            let e = expr(sql);
            let (agg, function) = aggregate(&e).unwrap();
            check_call(agg, function, |arg| *arg == expr("id")).map_err(|e| e.to_string())
        };
        assert!(check("count(DISTINCT id)").is_ok());
        assert!(check("count(DISTINCT name)").is_err());
        assert!(check("sum(DISTINCT id)").is_ok());
        assert!(check("avg(DISTINCT id)").is_ok());
        assert!(check("sum(DISTINCT score)").is_err());
        assert!(check("min(DISTINCT name)").is_ok());
        assert!(check("bool_or(DISTINCT active)").is_ok());
        assert!(check("count(*) FILTER (WHERE x > 1)").is_ok());
        assert!(check("max(x ORDER BY y)").is_err());
        assert_eq!(
            renamed(aggregate(&expr("avg(x)")).unwrap().1, "sum").to_string(),
            "sum(x)"
        );
    }
}
