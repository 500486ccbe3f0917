//! Conditions: what WHERE and ON say about keys, and the links key equalities make.

use super::bind::JoinKind;
use super::Reads;
use crate::plan::error::PlanError;
use crate::plan::key::{placeholder_index, KeyCond, KeySource};
use sqlparser::ast::{BinaryOperator, Distinct, Expr, GroupByExpr, Query, SetExpr, Visit, Visitor};
use std::ops::ControlFlow;

/// Where a condition stands, which decides what it proves about rows.
#[derive(Debug, Clone)]
pub(super) enum Clause {
    /// WHERE, or an inner join's ON: every row the scope yields satisfies it.
    Where,
    /// An outer join's ON: it only restricts which rows of a nullable side join.
    OuterOn {
        kind: JoinKind,
        left: Vec<usize>,
        right: Vec<usize>,
    },
}

impl Reads<'_> {
    /// Reads a condition's conjuncts for links and, in a WHERE (or inner-join ON),
    /// key conditions of the scope's occurrences.
    pub(super) fn conditions(
        &mut self,
        scope: usize,
        expr: &Expr,
        clause: &Clause,
    ) -> Result<(), PlanError> {
        for conjunct in conjuncts(expr) {
            match conjunct {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => {
                    if let (Some(a), Some(b)) =
                        (self.key_of(scope, left), self.key_of(scope, right))
                    {
                        if proves_link(clause, a, b) {
                            self.link(a, b);
                        }
                    }
                }
                // `key IN (SELECT other_key FROM …)`: a semi-join on keys, exact per
                // shard when the subquery yields its rows one by one.
                Expr::InSubquery {
                    expr,
                    subquery,
                    negated: false,
                } if matches!(clause, Clause::Where) && row_by_row(subquery) => {
                    if let Some(outer) = self.key_of(scope, expr) {
                        self.pending_in.push((&**subquery as *const Query, outer));
                    }
                }
                _ => {}
            }
            if matches!(clause, Clause::Where) {
                for occurrence in self.in_scope(scope) {
                    if let Some(cond) = self.key_cond(scope, occurrence, conjunct)? {
                        self.occurrences[occurrence].conds.push(cond);
                    }
                }
            }
        }
        Ok(())
    }

    /// What `expr` says about `occurrence`'s key, if anything.
    pub fn key_cond(
        &self,
        scope: usize,
        occurrence: usize,
        expr: &Expr,
    ) -> Result<Option<KeyCond>, PlanError> {
        let key_type = self.occurrences[occurrence].table.key_type;
        let is_key = |e: &Expr| self.key_of(scope, e) == Some(occurrence);
        let source = |e: &Expr| KeySource::from_expr(key_type, e);
        Ok(match expr {
            Expr::Nested(inner) => self.key_cond(scope, occurrence, inner)?,
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::Eq if is_key(left) => {
                    source(right)?.map(|s| KeyCond::Values(vec![s]))
                }
                BinaryOperator::Eq if is_key(right) => {
                    source(left)?.map(|s| KeyCond::Values(vec![s]))
                }
                BinaryOperator::And => {
                    let conds: Vec<KeyCond> = [
                        self.key_cond(scope, occurrence, left)?,
                        self.key_cond(scope, occurrence, right)?,
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    match conds.len() {
                        0 => None,
                        _ => Some(KeyCond::And(conds)),
                    }
                }
                BinaryOperator::Or => match (
                    self.key_cond(scope, occurrence, left)?,
                    self.key_cond(scope, occurrence, right)?,
                ) {
                    (Some(l), Some(r)) => Some(KeyCond::Or(vec![l, r])),
                    _ => None,
                },
                _ => None,
            },
            // `key = ANY (ARRAY[…])` is an IN list.
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } if is_key(left) => match right.as_ref() {
                Expr::Cast { expr: inner, .. } if placeholder_index(inner).is_some() => {
                    placeholder_index(inner).map(KeyCond::AnyOf)
                }
                param if placeholder_index(param).is_some() => {
                    placeholder_index(param).map(KeyCond::AnyOf)
                }
                Expr::Array(array) => {
                    let list = Expr::InList {
                        expr: left.clone(),
                        list: array.elem.clone(),
                        negated: false,
                    };
                    self.key_cond(scope, occurrence, &list)?
                }
                _ => None,
            },
            Expr::InList {
                expr,
                list,
                negated: false,
            } if is_key(expr) => {
                let mut sources = Vec::with_capacity(list.len());
                for item in list {
                    match source(item)? {
                        Some(s) => sources.push(s),
                        None => return Ok(None),
                    }
                }
                Some(KeyCond::Values(sources))
            }
            _ => None,
        })
    }
}

/// Whether `a = b` in `clause` means the rows that matter of `a` and `b` have equal
/// keys: an outer join's ON only says so for a nullable side's rows.
fn proves_link(clause: &Clause, a: usize, b: usize) -> bool {
    match clause {
        Clause::Where => true,
        Clause::OuterOn { kind, left, right } => {
            let (in_left, in_right) = (|o| left.contains(&o), |o| right.contains(&o));
            match kind {
                JoinKind::Left => in_right(a) || in_right(b),
                JoinKind::Right => in_left(a) || in_left(b),
                _ => (in_left(a) && in_right(b)) || (in_right(a) && in_left(b)),
            }
        }
    }
}

/// A subquery that yields each row of its FROM on its own (no grouping, aggregates,
/// window functions or limits), so its rows on a shard are exactly those the shard
/// holds.
pub(super) fn row_by_row(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.projection.len() == 1
        && !matches!(select.distinct, Some(Distinct::On(_)))
        && matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        && select.having.is_none()
        && !has_calls(&select.projection)
}

/// Whether any function is called outside subqueries (aggregates and window
/// functions among them).
fn has_calls<V: Visit>(node: &V) -> bool {
    struct Find(usize);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.0 += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.0 -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match (self.0, expr) {
                (0, Expr::Function(_)) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find(0)).is_break()
}

/// The operands of a top-level AND chain.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Expr::Nested(inner) => conjuncts(inner),
        _ => vec![expr],
    }
}
