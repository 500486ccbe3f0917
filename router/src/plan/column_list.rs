//! INSERT or COPY without a column list into a sharded table: its shard key is found by
//! position, which only the table's definition tells. The planner asks for the table's
//! columns ([`PlanError::ColumnsNeeded`]); the data plane reads them from a shard with
//! [`columns_query`] and plans the statement again as [`name_columns`] rewrites it. They are read for every such statement, so a table altered behind the proxy's
//! back is never misread.

use super::error::{unsupported, PlanError};
use super::insert::values_of;
use super::printing::print_checked;
use super::unreadable::copy_booleans;
use crate::hint::leading_comments;
use sqlparser::ast::{CopySource, Ident, ObjectName, ObjectNamePart, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A query whose one value lists the columns of `table` (as the INSERT names it) in
/// order, as `quote_ident`ed names separated by commas; NULL when there is no such table.
pub fn columns_query(table: &str) -> String {
    format!(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_catalog.pg_attribute \
         WHERE attrelid = pg_catalog.to_regclass('{}') AND attnum > 0 AND NOT attisdropped",
        table.replace('\'', "''")
    )
}

/// `sql`, an INSERT or a COPY without a column list, naming the table's `columns` (what
/// [`columns_query`] returned): an INSERT as many as its widest VALUES row has values, a
/// COPY all of them. Leading comments are kept.
pub fn name_columns(sql: &str, columns: &str) -> Result<String, PlanError> {
    let (_, body) = leading_comments(sql);
    let comments = &sql[..sql.len() - body.len()];
    let readable = copy_booleans(body);
    let body = readable.as_deref().unwrap_or(body);
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, body)
        .map_err(|error| PlanError::Syntax(error.to_string()))?;
    let (Some(statement), None) = (statements.pop(), statements.pop()) else {
        return Err(unsupported(
            "only one INSERT or COPY can have its columns named",
        ));
    };
    let named = match statement {
        Statement::Insert(mut insert) => {
            let width = values_of(&insert)
                .and_then(|values| values.rows.iter().map(|row| row.content.len()).max())
                .unwrap_or(0);
            insert.columns = column_idents(columns)?
                .into_iter()
                .take(width)
                .map(|ident| ObjectName(vec![ObjectNamePart::Identifier(ident)]))
                .collect();
            Statement::Insert(insert)
        }
        Statement::Copy {
            source: CopySource::Table { table_name, .. },
            to,
            target,
            options,
            legacy_options,
            values,
        } => Statement::Copy {
            source: CopySource::Table {
                table_name,
                columns: column_idents(columns)?,
            },
            to,
            target,
            options,
            legacy_options,
            values,
        },
        _ => {
            return Err(unsupported(
                "only an INSERT or a COPY can have its columns named",
            ))
        }
    };
    let text = print_checked(&named)?;
    Ok(format!("{comments}{text}"))
}

/// The identifiers of a comma-separated list of `quote_ident`ed names.
fn column_idents(columns: &str) -> Result<Vec<Ident>, PlanError> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, columns)
        .tokenize()
        .map_err(|error| PlanError::Syntax(error.to_string()))?;
    let mut idents = Vec::new();
    for token in tokens {
        match token {
            Token::Word(word) => idents.push(match word.quote_style {
                Some(quote) => Ident::with_quote(quote, word.value),
                None => Ident::new(word.value),
            }),
            Token::Comma | Token::Whitespace(_) => {}
            other => {
                return Err(unsupported(format!(
                    "unexpected {other} in the column list of a table"
                )))
            }
        }
    }
    Ok(idents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_gets_every_column_named() {
        let named = name_columns(
            "copy pgbench_accounts from stdin with (freeze on)",
            "aid, bid, abalance, filler",
        )
        .unwrap();
        assert!(
            named.starts_with("COPY pgbench_accounts (aid, bid, abalance, filler) FROM STDIN"),
            "{named}"
        );
        assert!(named.to_ascii_lowercase().contains("freeze"), "{named}");
    }

    #[test]
    fn names_as_many_columns_as_the_rows_have() {
        let sql = "/* app */ INSERT INTO users VALUES (1, 'a'), (2, 'b') RETURNING id";
        assert_eq!(
            name_columns(sql, "id, name, \"Region\", score").unwrap(),
            "/* app */ INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b') RETURNING id"
        );
    }

    #[test]
    fn keeps_parameters_and_quoted_names() {
        let sql = "INSERT INTO \"Odd Table\" VALUES ($1, $2, DEFAULT)";
        assert_eq!(
            name_columns(sql, "\"the key\", \"select\", x").unwrap(),
            "INSERT INTO \"Odd Table\" (\"the key\", \"select\", x) VALUES ($1, $2, DEFAULT)"
        );
    }

    #[test]
    fn the_query_quotes_the_table_name() {
        assert!(columns_query("o'neil").contains("to_regclass('o''neil')"));
    }

    #[test]
    fn refuses_what_is_not_an_insert() {
        assert!(name_columns("SELECT 1", "a").is_err());
        assert!(name_columns("INSERT INTO t VALUES (1); SELECT 1", "a").is_err());
    }
}
