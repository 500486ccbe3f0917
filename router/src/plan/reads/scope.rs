//! Scopes: the names a FROM list binds, and which occurrence's key a column is.

use super::Reads;
use crate::plan::names::ident;
use sqlparser::ast::Expr;

/// A FROM list's names: each table or alias, and the occurrence it is if sharded.
#[derive(Debug, Default)]
pub(super) struct Scope {
    pub parent: Option<usize>,
    pub bindings: Vec<(String, Option<usize>)>,
    /// Columns merged by `JOIN … USING` or NATURAL JOIN (not FULL): the bare name is
    /// the left occurrence's key.
    pub merged: Vec<(String, usize)>,
}

impl Reads<'_> {
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

    pub(super) fn new_scope(&mut self) -> usize {
        self.scopes.push(Scope {
            parent: self.stack.last().copied(),
            ..Scope::default()
        });
        self.scopes.len() - 1
    }

    pub(super) fn is_cte(&self, name: &str) -> bool {
        self.ctes.iter().flatten().any(|cte| cte == name)
    }
}
