//! The sharded tables a statement reads, the scopes they occur in, and what the
//! statement's conditions say about their keys.
//!
//! Every occurrence of a sharded table (in FROM, a join, a subquery or a CTE) is
//! recorded with the key conditions of its own scope's WHERE (and inner-join ON)
//! conjunction. Equalities between two keys (`a.id = b.user_id`) link occurrences:
//! linked occurrences see rows with equal keys, so they are on the same shard.

use super::error::{unsupported, PlanError};
use super::key::{KeyCond, KeySource};
use super::names::{ident, is_catalog, last, quoted};
use super::schema::{ShardSchema, ShardedTable};
use sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, Query, Select, SelectItem, SetExpr,
    TableFactor, TableWithJoins, Visit, Visitor,
};
use std::ops::ControlFlow;

/// One occurrence of a sharded table in a statement.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    pub table: ShardedTable,
    pub scope: usize,
    /// Conditions its scope puts on its key, all of which hold.
    pub conds: Vec<KeyCond>,
}

/// A FROM list's names: each table or alias, and the occurrence it is if sharded.
#[derive(Debug, Default)]
struct Scope {
    parent: Option<usize>,
    bindings: Vec<(String, Option<usize>)>,
    /// Columns merged by `JOIN … USING` or NATURAL JOIN (not FULL): the bare name is
    /// the left occurrence's key.
    merged: Vec<(String, usize)>,
}

/// Where a condition stands, which decides what it proves about rows.
#[derive(Debug, Clone)]
enum Clause {
    /// WHERE, or an inner join's ON: every row the scope yields satisfies it.
    Where,
    /// An outer join's ON: it only restricts which rows of a nullable side join.
    OuterOn {
        kind: JoinKind,
        left: Vec<usize>,
        right: Vec<usize>,
    },
}

/// How a join treats its sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// Collects the sharded tables of a statement (see the module documentation).
pub(crate) struct Reads<'s> {
    schema: &'s ShardSchema,
    pub occurrences: Vec<Occurrence>,
    edges: Vec<(usize, usize)>,
    scopes: Vec<Scope>,
    stack: Vec<usize>,
    ctes: Vec<Vec<String>>,
    depth: usize,
    /// Set by [`Reads::query`]: the outermost query's SELECT gets `top_scope`.
    expect_top: bool,
    top_is_select: bool,
    /// The scope of the outermost SELECT, when the statement is a plain SELECT.
    pub top_scope: Option<usize>,
    /// A replicated table is read.
    pub replicated: bool,
    /// An outer join keeps rows of a side without sharded tables while the other side
    /// has some: every shard would add that side's unmatched rows.
    pub preserved_unsharded: bool,
    /// `key IN (subquery)` seen but not visited yet: the subquery and the outer key's
    /// occurrence.
    pending_in: Vec<(*const Query, usize)>,
    /// The outer occurrence whose key the SELECT at this depth yields, for `IN`.
    in_select: Option<(usize, usize)>,
}

impl<'s> Reads<'s> {
    pub fn new(schema: &'s ShardSchema) -> Self {
        Reads {
            schema,
            occurrences: Vec::new(),
            edges: Vec::new(),
            scopes: Vec::new(),
            stack: Vec::new(),
            ctes: Vec::new(),
            depth: 0,
            expect_top: false,
            top_is_select: false,
            top_scope: None,
            replicated: false,
            preserved_unsharded: false,
            pending_in: Vec::new(),
            in_select: None,
        }
    }

    /// Reads a whole query statement.
    pub fn query(&mut self, query: &Query) -> Result<(), PlanError> {
        self.expect_top = true;
        into_result(query.visit(self))
    }

    /// Reads anything else (expressions, subqueries) within the current scope.
    pub fn visit<V: Visit>(&mut self, node: &V) -> Result<(), PlanError> {
        into_result(node.visit(self))
    }

    /// Opens the scope of a data-changing statement: its target and FROM / USING
    /// tables and its WHERE; close it with [`Reads::close_scope`].
    pub fn open_scope(
        &mut self,
        from: &[&TableWithJoins],
        selection: Option<&Expr>,
    ) -> Result<usize, PlanError> {
        let scope = self.new_scope();
        self.bind_from(scope, from.iter().copied(), selection)?;
        self.stack.push(scope);
        Ok(scope)
    }

    pub fn close_scope(&mut self) {
        self.stack.pop();
    }

    /// The occurrences bound in `scope`.
    pub fn in_scope(&self, scope: usize) -> Vec<usize> {
        self.scopes[scope]
            .bindings
            .iter()
            .filter_map(|(_, occurrence)| *occurrence)
            .collect()
    }

    /// Occurrences linked by key equalities, as groups of indexes.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        let mut root: Vec<usize> = (0..self.occurrences.len()).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        for &(a, b) in &self.edges {
            let (ra, rb) = (find(&mut root, a), find(&mut root, b));
            root[ra] = rb;
        }
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for i in 0..self.occurrences.len() {
            let r = find(&mut root, i);
            match groups.iter_mut().find(|(g, _)| *g == r) {
                Some((_, members)) => members.push(i),
                None => groups.push((r, vec![i])),
            }
        }
        groups.into_iter().map(|(_, members)| members).collect()
    }

    /// Which occurrence's key `expr` is, if it is a key column.
    pub fn key_of(&self, scope: usize, expr: &Expr) -> Option<usize> {
        match expr {
            Expr::Nested(inner) => self.key_of(scope, inner),
            Expr::Identifier(name) => {
                let name = ident(name);
                if let Some((_, o)) = self.scopes[scope].merged.iter().find(|(n, _)| *n == name) {
                    return Some(*o);
                }
                let mut found = self.scopes[scope]
                    .bindings
                    .iter()
                    .filter_map(|(_, o)| *o)
                    .filter(|&o| self.occurrences[o].table.column == name);
                let first = found.next();
                // Two tables with this key name: PostgreSQL finds it ambiguous.
                found.next().is_none().then_some(first).flatten()
            }
            Expr::CompoundIdentifier(names) if names.len() >= 2 => {
                let column = ident(&names[names.len() - 1]);
                let qualifier = ident(&names[names.len() - 2]);
                let mut current = Some(scope);
                while let Some(s) = current {
                    if let Some((_, occurrence)) = self.scopes[s]
                        .bindings
                        .iter()
                        .find(|(n, _)| *n == qualifier)
                    {
                        return occurrence.filter(|&o| self.occurrences[o].table.column == column);
                    }
                    current = self.scopes[s].parent;
                }
                None
            }
            _ => None,
        }
    }

    fn new_scope(&mut self) -> usize {
        self.scopes.push(Scope {
            parent: self.stack.last().copied(),
            ..Scope::default()
        });
        self.scopes.len() - 1
    }

    fn bind_from<'a>(
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

    fn link(&mut self, a: usize, b: usize) {
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
                    self.replicated = true;
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

    fn is_cte(&self, name: &str) -> bool {
        self.ctes.iter().flatten().any(|cte| cte == name)
    }

    /// Reads a condition's conjuncts for links and, in a WHERE (or inner-join ON),
    /// key conditions of the scope's occurrences.
    fn conditions(&mut self, scope: usize, expr: &Expr, clause: &Clause) -> Result<(), PlanError> {
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
fn row_by_row(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.projection.len() == 1
        && !matches!(select.distinct, Some(sqlparser::ast::Distinct::On(_)))
        && matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty())
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
pub(crate) fn conjuncts(expr: &Expr) -> Vec<&Expr> {
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

fn into_result(flow: ControlFlow<PlanError>) -> Result<(), PlanError> {
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

impl Visitor for Reads<'_> {
    type Break = PlanError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<PlanError> {
        self.depth += 1;
        let this = query as *const Query;
        if let Some(i) = self
            .pending_in
            .iter()
            .position(|(q, _)| std::ptr::eq(*q, this))
        {
            let (_, outer) = self.pending_in.swap_remove(i);
            self.in_select = Some((self.depth, outer));
        }
        if self.depth == 1 && self.expect_top {
            self.top_is_select = matches!(*query.body, SetExpr::Select(_));
        }
        if matches!(
            *query.body,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        ) {
            return ControlFlow::Break(unsupported(
                "data-modifying statements in WITH are not supported on a sharded database; run them as separate statements",
            ));
        }
        let names = query.with.iter().flat_map(|with| &with.cte_tables);
        self.ctes
            .push(names.map(|cte| ident(&cte.alias.name)).collect());
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<PlanError> {
        self.depth -= 1;
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<PlanError> {
        let scope = self.new_scope();
        if self.depth == 1 && self.top_is_select && self.top_scope.is_none() {
            self.top_scope = Some(scope);
        }
        if let Err(error) = self.bind_from(scope, select.from.iter(), select.selection.as_ref()) {
            return ControlFlow::Break(error);
        }
        if let Some((depth, outer)) = self.in_select {
            if depth == self.depth {
                self.in_select = None;
                if let [SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }] =
                    select.projection.as_slice()
                {
                    if let Some(inner) = self.key_of(scope, expr) {
                        self.link(outer, inner);
                    }
                }
            }
        }
        self.stack.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _select: &Select) -> ControlFlow<PlanError> {
        self.stack.pop();
        ControlFlow::Continue(())
    }
}
