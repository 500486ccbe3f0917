//! Printing statements built for the shards, checked by reading them back.
//!
//! A rewritten statement is sqlparser's printing of a changed AST. Should the
//! printing of some construct not mean what was parsed, a shard would run another
//! statement than the client's; reading the text back and comparing catches that.

use super::error::{unsupported, PlanError};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The text of `statement`, if it reads back as the same statement.
pub(crate) fn print_checked(statement: &Statement) -> Result<String, PlanError> {
    let text = statement.to_string();
    match Parser::parse_sql(&PostgreSqlDialect {}, &text) {
        Ok(statements) if statements.len() == 1 && statements[0] == *statement => Ok(text),
        _ => Err(unsupported(format!(
            "this statement cannot be rewritten for several shards (its SQL text does not print faithfully: {text}); filter on the shard key to run on one shard"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_syntax_prints_faithfully() {
        for sql in [
            "SELECT a::int, CAST(b AS text), 'it''s', E'a\\nb', $$x$$, -1.5e3, NULL FROM t",
            "SELECT x FROM t WHERE a IS DISTINCT FROM b AND c ILIKE '%a' AND d BETWEEN 1 AND 2",
            "SELECT now() - INTERVAL '1 day', extract(year FROM ts), ARRAY[1, 2], a[1] FROM t",
            "SELECT j->>'k', j #> '{a,b}', coalesce(a, b), CASE WHEN a THEN 1 ELSE 2 END FROM t",
            "SELECT count(*) FROM t u JOIN s ON s.id = u.id LEFT JOIN r USING (id) WHERE u.x IN (1, 2)",
            "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.a = t.a) ORDER BY a DESC NULLS LAST LIMIT 3",
            "INSERT INTO t (a, b) VALUES ($1, 'x'), ($2, DEFAULT) ON CONFLICT (a) DO UPDATE SET b = excluded.b RETURNING *",
            "SELECT substring(a FROM 1 FOR 2), position('a' IN b), trim(both ' ' FROM c) FROM t",
            "SELECT a COLLATE \"C\", ts AT TIME ZONE 'UTC', x::numeric(10, 2) FROM t",
        ] {
            let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
            assert!(print_checked(&statement).is_ok(), "{sql} -> {statement}");
        }
    }
}
