//! The sharded tables a statement reads, the scopes they occur in, and what the
//! statement's conditions say about their keys.
//!
//! Every occurrence of a sharded table (in FROM, a join, a subquery or a CTE) is
//! recorded with the key conditions of its own scope's WHERE (and inner-join ON)
//! conjunction. Equalities between two keys (`a.id = b.user_id`) link occurrences:
//! linked occurrences see rows with equal keys, so they are on the same shard.

mod bind;
mod conditions;
mod scope;

use super::error::{unsupported, PlanError};
use super::key::KeyCond;
use super::names::ident;
use super::schema::{ShardSchema, ShardedTable};
use sqlparser::ast::{Expr, Query, Select, SelectItem, SetExpr, TableWithJoins, Visit, Visitor};
use std::ops::ControlFlow;

use scope::Scope;

/// One occurrence of a sharded table in a statement.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    pub table: ShardedTable,
    pub scope: usize,
    /// Conditions its scope puts on its key, all of which hold.
    pub conds: Vec<KeyCond>,
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
