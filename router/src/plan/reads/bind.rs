//! Binding a FROM list: tables, aliases and joins, and the links joins make.

use super::conditions::Clause;
use super::{Occurrence, Reads};
use crate::plan::error::{unsupported, PlanError};
use crate::plan::names::{ident, is_catalog, last, quoted};
use sqlparser::ast::{Expr, JoinConstraint, JoinOperator, TableFactor, TableWithJoins};

/// How a join treats its sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl Reads<'_> {
    pub(super) fn bind_from<'a>(
        &mut self,
        scope: usize,
        from: impl Iterator<Item = &'a TableWithJoins>,
        selection: Option<&Expr>,
    ) -> Result<(), PlanError> {
        let mut ons = Vec::new();
        for item in from {
            self.bind_joins(scope, item, &mut ons)?;
        }
        for (on, clause) in ons {
            self.conditions(scope, on, &clause)?;
        }
        if let Some(selection) = selection {
            self.conditions(scope, selection, &Clause::Where)?;
        }
        Ok(())
    }

    /// Binds a join chain; returns the occurrences it holds.
    fn bind_joins<'a>(
        &mut self,
        scope: usize,
        item: &'a TableWithJoins,
        ons: &mut Vec<(&'a Expr, Clause)>,
    ) -> Result<Vec<usize>, PlanError> {
        let mut left = self.bind_factor(scope, &item.relation, ons)?;
        for join in &item.joins {
            let right = self.bind_factor(scope, &join.relation, ons)?;
            let (kind, constraint) = join_kind(&join.join_operator);
            let preserved_unsharded = match kind {
                JoinKind::Inner => false,
                JoinKind::Left => left.is_empty() && !right.is_empty(),
                JoinKind::Right => right.is_empty() && !left.is_empty(),
                JoinKind::Full => left.is_empty() != right.is_empty(),
            };
            self.preserved_unsharded |= preserved_unsharded;
            match constraint {
                Some(JoinConstraint::On(on)) => {
                    let clause = match kind {
                        JoinKind::Inner => Clause::Where,
                        _ => Clause::OuterOn {
                            kind,
                            left: left.clone(),
                            right: right.clone(),
                        },
                    };
                    ons.push((on, clause));
                }
                Some(JoinConstraint::Using(columns)) => {
                    for column in columns {
                        self.merge_by_name(scope, kind, &left, &right, &last(column));
                    }
                }
                Some(JoinConstraint::Natural) => {
                    for &r in &right {
                        let column = self.occurrences[r].table.column.clone();
                        self.merge_by_name(scope, kind, &left, &[r], &column);
                    }
                }
                Some(JoinConstraint::None) | None => {}
            }
            left.extend(right);
        }
        Ok(left)
    }

    /// Links the occurrences on both sides of a USING or NATURAL join whose key is the
    /// merged `column`.
    fn merge_by_name(
        &mut self,
        scope: usize,
        kind: JoinKind,
        left: &[usize],
        right: &[usize],
        column: &str,
    ) {
        let keyed = |o: &usize| self.occurrences[*o].table.column == column;
        let left: Vec<usize> = left.iter().copied().filter(keyed).collect();
        let right: Vec<usize> = right.iter().copied().filter(keyed).collect();
        for &l in &left {
            for &r in &right {
                self.link(l, r);
            }
        }
        let merged = match kind {
            JoinKind::Inner | JoinKind::Left => left.first(),
            JoinKind::Right => right.first(),
            JoinKind::Full => None,
        };
        if let Some(&o) = merged {
            self.scopes[scope].merged.push((column.to_string(), o));
        }
    }

    pub(super) fn link(&mut self, a: usize, b: usize) {
        if a != b
            && self.occurrences[a]
                .table
                .colocated_with(&self.occurrences[b].table)
        {
            self.edges.push((a, b));
        }
    }

    fn bind_factor<'a>(
        &mut self,
        scope: usize,
        factor: &'a TableFactor,
        ons: &mut Vec<(&'a Expr, Clause)>,
    ) -> Result<Vec<usize>, PlanError> {
        let (name, occurrences) = match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let table = last(name);
                let binding = alias.as_ref().map_or(table.clone(), |a| ident(&a.name));
                let occurrence = if (name.0.len() == 1 && self.is_cte(&table)) || is_catalog(name) {
                    None
                } else if let Some(sharded) = self.schema.sharded(&table) {
                    self.occurrences.push(Occurrence {
                        table: sharded.clone(),
                        scope,
                        conds: Vec::new(),
                    });
                    Some(self.occurrences.len() - 1)
                } else if self.schema.is_replicated(&table) {
                    None
                } else {
                    return Err(unsupported(format!(
                        "table {} is neither sharded nor replicated in database {}; add it to sharded_tables or replicated_tables",
                        quoted(&table),
                        quoted(self.schema.database())
                    )));
                };
                self.scopes[scope].bindings.push((binding, occurrence));
                return Ok(occurrence.into_iter().collect());
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => (
                alias.as_ref().map(|a| ident(&a.name)),
                self.bind_joins(scope, table_with_joins, ons)?,
            ),
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::TableFunction { alias, .. } => {
                (alias.as_ref().map(|a| ident(&a.name)), Vec::new())
            }
            _ => (None, Vec::new()),
        };
        if let Some(name) = name {
            self.scopes[scope].bindings.push((name, None));
        }
        Ok(occurrences)
    }
}

fn join_kind(operator: &JoinOperator) -> (JoinKind, Option<&JoinConstraint>) {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::StraightJoin(c) => (JoinKind::Inner, Some(c)),
        JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::Semi(c)
        | JoinOperator::Anti(c) => (JoinKind::Left, Some(c)),
        JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::RightAnti(c) => (JoinKind::Right, Some(c)),
        JoinOperator::CrossApply => (JoinKind::Inner, None),
        JoinOperator::OuterApply => (JoinKind::Left, None),
        JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
        JoinOperator::AsOf { constraint, .. } => (JoinKind::Full, Some(constraint)),
        // Not PostgreSQL: the most cautious reading.
        _ => (JoinKind::Full, None),
    }
}
