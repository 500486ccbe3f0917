//! INSERT without a column list into a sharded table: its shard key is found by
//! position, which only the table's definition tells. The planner asks for the table's
//! columns ([`PlanError::ColumnsNeeded`]); the data plane reads them from a shard with
//! [`columns_query`] and plans the statement again as [`name_insert_columns`] rewrites
//! it. They are read for every such statement, so a table altered behind the proxy's
//! back is never misread.

use super::error::{unsupported, PlanError};
use super::insert::values_of;
use super::printing::print_checked;
use crate::hint::leading_comments;
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Statement};
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

/// `sql`, an INSERT without a column list, naming as many of `columns` (what
/// [`columns_query`] returned) as its widest VALUES row has values. Leading comments are
/// kept.
pub fn name_insert_columns(sql: &str, columns: &str) -> Result<String, PlanError> {
    let (_, body) = leading_comments(sql);
    let comments = &sql[..sql.len() - body.len()];
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, body)
        .map_err(|error| PlanError::Syntax(error.to_string()))?;
    let (Some(Statement::Insert(mut insert)), None) = (statements.pop(), statements.pop()) else {
        return Err(unsupported("only an INSERT can have its columns named"));
    };
    let width = values_of(&insert)
        .and_then(|values| values.rows.iter().map(|row| row.content.len()).max())
        .unwrap_or(0);
    insert.columns = column_idents(columns)?
        .into_iter()
        .take(width)
        .map(|ident| ObjectName(vec![ObjectNamePart::Identifier(ident)]))
        .collect();
    let text = print_checked(&Statement::Insert(insert))?;
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
    fn names_as_many_columns_as_the_rows_have() {
        let sql = "/* app */ INSERT INTO users VALUES (1, 'a'), (2, 'b') RETURNING id";
        assert_eq!(
            name_insert_columns(sql, "id, name, \"Region\", score").unwrap(),
            "/* app */ INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b') RETURNING id"
        );
    }

    #[test]
    fn keeps_parameters_and_quoted_names() {
        let sql = "INSERT INTO \"Odd Table\" VALUES ($1, $2, DEFAULT)";
        assert_eq!(
            name_insert_columns(sql, "\"the key\", \"select\", x").unwrap(),
            "INSERT INTO \"Odd Table\" (\"the key\", \"select\", x) VALUES ($1, $2, DEFAULT)"
        );
    }

    #[test]
    fn the_query_quotes_the_table_name() {
        assert!(columns_query("o'neil").contains("to_regclass('o''neil')"));
    }

    #[test]
    fn refuses_what_is_not_an_insert() {
        assert!(name_insert_columns("SELECT 1", "a").is_err());
        assert!(name_insert_columns("INSERT INTO t VALUES (1); SELECT 1", "a").is_err());
    }
}
