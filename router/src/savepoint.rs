//! SAVEPOINT, RELEASE and ROLLBACK TO: a sharded session repeats them on every shard its
//! transaction reached, and on each shard it reaches later, so it needs their names.

use crate::hint::leading_comments;
use crate::plan::names::ident;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// A savepoint statement and the savepoint it names, folded as PostgreSQL folds
/// identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavepointCommand {
    /// `SAVEPOINT name`.
    Define(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
}

impl SavepointCommand {
    pub fn name(&self) -> &str {
        match self {
            SavepointCommand::Define(name)
            | SavepointCommand::Release(name)
            | SavepointCommand::RollbackTo(name) => name,
        }
    }

    /// The statement's name in PostgreSQL's messages.
    pub fn statement(&self) -> &'static str {
        match self {
            SavepointCommand::Define(_) => "SAVEPOINT",
            SavepointCommand::Release(_) => "RELEASE SAVEPOINT",
            SavepointCommand::RollbackTo(_) => "ROLLBACK TO SAVEPOINT",
        }
    }

    /// The command tag PostgreSQL answers it with.
    pub fn tag(&self) -> &'static str {
        match self {
            SavepointCommand::Define(_) => "SAVEPOINT",
            SavepointCommand::Release(_) => "RELEASE",
            SavepointCommand::RollbackTo(_) => "ROLLBACK",
        }
    }
}

/// The savepoint command `sql` is (one statement, possibly after comments), if any.
/// Other statements cost a look at their first word.
pub fn savepoint_command(sql: &str) -> Option<SavepointCommand> {
    let (_, body) = leading_comments(sql);
    let first = body.split_whitespace().next()?.to_ascii_lowercase();
    if !matches!(
        first.as_str(),
        "savepoint" | "release" | "rollback" | "abort"
    ) {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, body).ok()?;
    if statements.len() != 1 {
        return None;
    }
    match statements.pop()? {
        Statement::Savepoint { name } => Some(SavepointCommand::Define(ident(&name))),
        Statement::ReleaseSavepoint { name } => Some(SavepointCommand::Release(ident(&name))),
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => Some(SavepointCommand::RollbackTo(ident(&name))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_each_form() {
        for (sql, command) in [
            ("SAVEPOINT a", SavepointCommand::Define("a".into())),
            (
                "savepoint \"Mixed\"",
                SavepointCommand::Define("Mixed".into()),
            ),
            (
                "/* app */ SAVEPOINT Sp1",
                SavepointCommand::Define("sp1".into()),
            ),
            ("RELEASE SAVEPOINT a", SavepointCommand::Release("a".into())),
            ("RELEASE a", SavepointCommand::Release("a".into())),
            (
                "ROLLBACK TO SAVEPOINT a",
                SavepointCommand::RollbackTo("a".into()),
            ),
            ("ROLLBACK TO a", SavepointCommand::RollbackTo("a".into())),
            (
                "ROLLBACK WORK TO SAVEPOINT a",
                SavepointCommand::RollbackTo("a".into()),
            ),
        ] {
            assert_eq!(savepoint_command(sql), Some(command), "{sql}");
        }
    }

    #[test]
    fn leaves_other_statements() {
        for sql in [
            "ROLLBACK",
            "ABORT",
            "COMMIT",
            "SELECT 1",
            "SAVEPOINT",
            "release",
        ] {
            assert_eq!(savepoint_command(sql), None, "{sql}");
        }
    }
}
