//! Parsing one statement and choosing how to analyze it.

use super::error::{unsupported, PlanError};
use super::large_objects::large_object_call;
use super::reads::Reads;
use super::schema::ShardSchema;
use super::statement_kind::utility_plan;
use super::template::{any_one, Template};
use super::{copy, insert, modify, select, unreadable};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::borrow::Cow;

/// The template of `body`, one statement without its leading comments.
pub(crate) fn analyze(schema: &ShardSchema, body: &str) -> Template {
    match parse(body).and_then(|statement| match statement {
        None => Ok(Template::Fixed(any_one())),
        Some(statement) => template(schema, &statement),
    }) {
        Ok(template) => template,
        // PostgreSQL may accept what sqlparser cannot read: never a syntax error of the
        // proxy's own.
        Err(PlanError::Syntax(reason)) => match unreadable::plan(body, &reason) {
            Ok(plan) => Template::Fixed(plan),
            Err(error) => Template::Refused(error),
        },
        Err(error) => Template::Refused(error),
    }
}

/// The one statement in `body`; `None` for an empty one.
fn parse(body: &str) -> Result<Option<Statement>, PlanError> {
    let readable = unreadable::copy_booleans(body);
    let body = readable.as_deref().unwrap_or(body);
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &table_shorthand(body))
        .map_err(|error| PlanError::Syntax(error.to_string()))?;
    match statements.len() {
        0 => Ok(None),
        1 => Ok(statements.pop()),
        _ => Err(unsupported(
            "send one statement at a time here; split the query string on semicolons",
        )),
    }
}

/// `TABLE t` is `SELECT * FROM t`, which sqlparser does not read as is.
fn table_shorthand(body: &str) -> Cow<'_, str> {
    let word_end = body
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(body.len());
    if !body[..word_end].eq_ignore_ascii_case("table") {
        return body.into();
    }
    let rest = body[word_end..].trim_start();
    let rest = match rest.get(..5) {
        Some(only) if only.eq_ignore_ascii_case("only ") => &rest[5..],
        _ => rest,
    };
    format!("SELECT * FROM {rest}").into()
}

fn template(schema: &ShardSchema, statement: &Statement) -> Result<Template, PlanError> {
    if let Some(function) = large_object_call(statement) {
        return Err(unsupported(format!(
            "{function}(): each shard keeps its own large objects, so one made through pgshard \
             would be found on one shard only; keep the contents in a bytea column of a \
             sharded or replicated table, or work on one shard's large objects with \
             /* pgshard: shard=N */"
        )));
    }
    match statement {
        Statement::Query(query) => select::plan(schema, query),
        Statement::Insert(insert) => insert::plan(schema, insert),
        Statement::Update(update) => modify::update(schema, update),
        Statement::Delete(delete) => modify::delete(schema, delete),
        Statement::Copy { .. } => copy::plan(schema, statement),
        Statement::Explain {
            analyze,
            statement: inner,
            options,
            ..
        } => {
            let analyze = *analyze
                || options.iter().flatten().any(|option| {
                    option.name.value.eq_ignore_ascii_case("analyze")
                        && option.arg.as_ref().is_none_or(|arg| {
                            !matches!(
                                arg.to_string().to_ascii_lowercase().as_str(),
                                "false" | "off" | "0"
                            )
                        })
                });
            Ok(Template::Explain {
                inner: Box::new(template(schema, inner)?),
                analyze,
            })
        }
        Statement::CreateTable(create) => {
            if let Some(query) = &create.query {
                let mut reads = Reads::new(schema);
                reads.query(query)?;
                if !reads.occurrences.is_empty() {
                    return Err(unsupported(
                        "CREATE TABLE … AS over sharded tables is not supported; create the table, then INSERT its rows",
                    ));
                }
            }
            Ok(Template::Fixed(utility_plan(statement)?))
        }
        _ => Ok(Template::Fixed(utility_plan(statement)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shorthand_reads_as_select() {
        assert_eq!(table_shorthand("TABLE users"), "SELECT * FROM users");
        assert_eq!(table_shorthand("table only s.t"), "SELECT * FROM s.t");
        assert_eq!(table_shorthand("tables"), "tables");
        assert_eq!(table_shorthand("SELECT 1"), "SELECT 1");
    }
}
