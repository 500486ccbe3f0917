//! Cursor statements (`DECLARE … CURSOR`, `FETCH`, `MOVE`, `CLOSE`), read for a sharded
//! database, where the proxy runs a cursor over every shard's cursor and merges them.

use sqlparser::ast::{CloseCursor, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// A cursor statement, as the proxy runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorCommand {
    /// `DECLARE name CURSOR FOR query`.
    Declare {
        /// The cursor's name as PostgreSQL folds it.
        name: String,
        /// The query's text.
        query: String,
        /// `WITH HOLD`: the cursor outlives its transaction.
        hold: bool,
        /// `BINARY`: rows in binary format.
        binary: bool,
    },
    /// `FETCH` (or `MOVE`, which counts rows without returning them).
    Fetch {
        name: String,
        count: FetchCount,
        moving: bool,
    },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close { name: Option<String> },
    /// A cursor statement the proxy cannot run exactly (fetching backward or at a
    /// position): why.
    Unsupported(&'static str),
}

/// How many rows a FETCH takes, forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchCount {
    Rows(u64),
    All,
}

/// The cursor statement `sql` is, if it is one.
pub fn cursor_command(sql: &str) -> Option<CursorCommand> {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?
        .to_ascii_uppercase();
    match first.as_str() {
        "DECLARE" | "CLOSE" => {}
        // FETCH and MOVE are read here: sqlparser reads neither `FETCH c` nor MOVE.
        "FETCH" | "MOVE" => return Some(fetch(sql, first == "MOVE")),
        _ => return None,
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let (Some(statement), None) = (statements.pop(), statements.pop()) else {
        return None;
    };
    Some(match statement {
        Statement::Declare { mut stmts } => {
            let declare = stmts.pop().filter(|_| stmts.is_empty())?;
            let query = declare.for_query?;
            let name = fold(declare.names.first()?);
            CursorCommand::Declare {
                name,
                query: query.to_string(),
                hold: declare.hold == Some(true),
                binary: declare.binary == Some(true),
            }
        }
        Statement::Close { cursor } => CursorCommand::Close {
            name: match cursor {
                CloseCursor::All => None,
                CloseCursor::Specific { name } => Some(fold(&name)),
            },
        },
        _ => return None,
    })
}

/// `FETCH|MOVE [direction] [FROM|IN] name`, forward directions only.
fn fetch(sql: &str, moving: bool) -> CursorCommand {
    let body = sql.trim().trim_end_matches(';').trim_end();
    let mut words: Vec<&str> = body.split_whitespace().skip(1).collect();
    let Some(name) = words.pop() else {
        return CursorCommand::Unsupported(UNREADABLE);
    };
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let mut upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    if matches!(upper.last(), Some(&("FROM" | "IN"))) {
        upper.pop();
    }
    let rows = |n: &str| match n.parse::<i64>() {
        Ok(n) if n >= 0 => Some(FetchCount::Rows(n as u64)),
        _ => None,
    };
    let count = match upper.as_slice() {
        [] | ["NEXT"] | ["FORWARD"] => Some(FetchCount::Rows(1)),
        ["ALL"] | ["FORWARD", "ALL"] => Some(FetchCount::All),
        [n] | ["FORWARD", n] => rows(n),
        _ => None,
    };
    let Some(count) = count else {
        return CursorCommand::Unsupported(BACKWARD);
    };
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => name.to_lowercase(),
    };
    CursorCommand::Fetch {
        name,
        count,
        moving,
    }
}

const UNREADABLE: &str = "FETCH and MOVE name a cursor: FETCH [count] FROM name";

const BACKWARD: &str = "a cursor over several shards fetches forward only (FETCH n, NEXT, \
                        FORWARD, ALL); fetching backward or at a position is not supported";

/// An identifier as PostgreSQL names it: unquoted ones fold to lower case.
fn fold(ident: &sqlparser::ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_declare() {
        assert_eq!(
            cursor_command("declare C cursor for select id from users where id > 3"),
            Some(CursorCommand::Declare {
                name: "c".into(),
                query: "SELECT id FROM users WHERE id > 3".into(),
                hold: false,
                binary: false,
            })
        );
        assert!(matches!(
            cursor_command("DECLARE \"Big\" NO SCROLL CURSOR WITH HOLD FOR SELECT 1"),
            Some(CursorCommand::Declare { name, hold: true, .. }) if name == "Big"
        ));
        assert!(matches!(
            cursor_command("DECLARE b BINARY CURSOR FOR SELECT 1"),
            Some(CursorCommand::Declare { binary: true, .. })
        ));
    }

    #[test]
    fn reads_fetch_and_move_forward() {
        let fetch = |sql: &str| match cursor_command(sql) {
            Some(CursorCommand::Fetch {
                name,
                count,
                moving,
            }) => (name, count, moving),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            fetch("FETCH 10 FROM c"),
            ("c".into(), FetchCount::Rows(10), false)
        );
        assert_eq!(
            fetch("fetch next in C"),
            ("c".into(), FetchCount::Rows(1), false)
        );
        assert_eq!(fetch("FETCH c"), ("c".into(), FetchCount::Rows(1), false));
        assert_eq!(
            fetch("FETCH ALL FROM c"),
            ("c".into(), FetchCount::All, false)
        );
        assert_eq!(
            fetch("FETCH FORWARD 5 FROM c"),
            ("c".into(), FetchCount::Rows(5), false)
        );
        assert_eq!(
            fetch("FETCH FORWARD ALL FROM c"),
            ("c".into(), FetchCount::All, false)
        );
        assert_eq!(
            fetch("MOVE 3 IN c"),
            ("c".into(), FetchCount::Rows(3), true)
        );
        assert_eq!(
            fetch("  move all from c"),
            ("c".into(), FetchCount::All, true)
        );
    }

    #[test]
    fn backward_fetches_are_unsupported() {
        for sql in [
            "FETCH PRIOR FROM c",
            "FETCH BACKWARD 2 FROM c",
            "FETCH ABSOLUTE 3 FROM c",
            "FETCH -1 FROM c",
            "MOVE FIRST IN c",
        ] {
            assert!(
                matches!(cursor_command(sql), Some(CursorCommand::Unsupported(_))),
                "{sql}: {:?}",
                cursor_command(sql)
            );
        }
    }

    #[test]
    fn reads_close_and_ignores_the_rest() {
        assert_eq!(
            cursor_command("CLOSE c"),
            Some(CursorCommand::Close {
                name: Some("c".into())
            })
        );
        assert_eq!(
            cursor_command("CLOSE ALL"),
            Some(CursorCommand::Close { name: None })
        );
        assert_eq!(cursor_command("SELECT 1"), None);
        assert_eq!(cursor_command("MOVED"), None);
    }
}
