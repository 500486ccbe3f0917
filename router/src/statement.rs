//! Classifying one statement: read or write, transaction control, hint.
//!
//! Reads are recognized by an allow-list and everything else is a write, so a
//! statement kind pgshard does not know (or cannot parse) runs on the primary, where
//! every statement works. A read-looking statement is then searched, nested queries
//! included, for anything that writes or locks.

use crate::classification::{Classification, Route, TxnControl};
use crate::hint::{hints_from_comments, leading_comments};
use crate::param::RoleHint;
use crate::write_functions::WriteFunctions;
use sqlparser::ast::{
    CopyTarget, Expr, Query, Select, SetExpr, Statement, TableFactor, TransactionAccessMode,
    TransactionIsolationLevel, TransactionMode, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::borrow::Cow;
use std::ops::ControlFlow;

/// First words of the statements that can be reads or control transactions; all
/// others are writes without parsing (which also spares parsing large INSERTs).
const PARSED_FIRST_WORDS: &[&str] = &[
    "select",
    "with",
    "values",
    "table",
    "show",
    "explain",
    "copy",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
];

/// Statements longer than this go to the primary unparsed: parsing copies a statement's
/// literals several times over, memory no budget of message bytes accounts for, and a
/// statement this long is a bulk write far more often than a read worth a replica.
pub const MAX_PARSED_LEN: usize = 4 << 20;

/// How much of an unparsable statement goes into the debug log.
const LOGGED_LEN: usize = 200;

/// Classifies one statement of a query string (see [`crate::split_statements`]).
pub(crate) fn classify_statement(statement: &str, functions: &WriteFunctions) -> Classification {
    let (comments, body) = leading_comments(statement);
    let (hint, hint_error) = match hints_from_comments(&comments) {
        Ok(hints) => (hints.role, None),
        Err(error) => (None, Some(error)),
    };
    let (route, txn) = if body.is_empty() {
        (Route::Read, TxnControl::None)
    } else {
        classify_body(body, functions)
    };
    Classification {
        route: if hint == Some(RoleHint::Primary) {
            Route::Write
        } else {
            route
        },
        txn,
        hint,
        hint_error,
    }
}

/// The route and transaction control of a statement without its leading comments.
fn classify_body(body: &str, functions: &WriteFunctions) -> (Route, TxnControl) {
    if body.len() > MAX_PARSED_LEN {
        return (Route::Write, TxnControl::None);
    }
    let first = body
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let sql: Cow<str> = match first.as_str() {
        // A parenthesized query, e.g. `(SELECT 1) UNION (SELECT 2)`.
        "" if body.starts_with('(') => body.into(),
        // `TABLE t` means `SELECT * FROM t`, which sqlparser does not accept as is.
        // ONLY (no inheritance children) changes nothing about reading.
        "table" => {
            let rest = body[5..].trim_start();
            let rest = match rest.get(..5) {
                Some(only) if only.eq_ignore_ascii_case("only ") => &rest[5..],
                _ => rest,
            };
            format!("SELECT * FROM {rest}").into()
        }
        word if PARSED_FIRST_WORDS.contains(&word) => body.into(),
        _ => return (Route::Write, TxnControl::None),
    };
    let statements = match Parser::parse_sql(&PostgreSqlDialect {}, &sql) {
        Ok(statements) => statements,
        Err(error) => {
            let shown: String = body.chars().take(LOGGED_LEN).collect();
            tracing::debug!(%error, statement = %shown, "unparsable statement goes to the primary");
            return (Route::Write, TxnControl::None);
        }
    };
    let mut finder = FindWrite { functions };
    let route = match statements.visit(&mut finder) {
        ControlFlow::Break(()) => Route::Write,
        ControlFlow::Continue(()) => Route::Read,
    };
    let txn = statements
        .iter()
        .map(txn_control)
        .rfind(|txn| *txn != TxnControl::None)
        .unwrap_or(TxnControl::None);
    (route, txn)
}

/// Whether a COMMIT or ROLLBACK ends with `AND CHAIN`: a new transaction with the same
/// modes starts at once.
pub fn and_chain(sql: &str) -> bool {
    let (_, body) = leading_comments(sql);
    match Parser::parse_sql(&PostgreSqlDialect {}, body).as_deref() {
        Ok([Statement::Commit { chain, .. }]) => *chain,
        Ok(
            [Statement::Rollback {
                chain,
                savepoint: None,
            }],
        ) => *chain,
        _ => false,
    }
}

fn txn_control(statement: &Statement) -> TxnControl {
    match statement {
        Statement::StartTransaction { modes, .. } => TxnControl::Begin {
            read_only: access_mode(modes) == Some(TransactionAccessMode::ReadOnly),
        },
        Statement::Commit { .. } => TxnControl::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => TxnControl::Rollback,
        _ => TxnControl::None,
    }
}

/// The access mode in effect: PostgreSQL lets the last one given win.
fn access_mode(modes: &[TransactionMode]) -> Option<TransactionAccessMode> {
    modes.iter().rev().find_map(|mode| match mode {
        TransactionMode::AccessMode(access) => Some(*access),
        TransactionMode::IsolationLevel(_) => None,
    })
}

/// Whether a statement of this kind, taken alone, can run on a replica; what it
/// contains (queries, nested statements, calls) is checked by [`FindWrite`].
fn is_read_kind(statement: &Statement) -> bool {
    match statement {
        // EXPLAIN is as much a read as what it explains, which is visited next. With
        // ANALYZE it runs it; without, a replica could plan a write, but the primary
        // is the safe choice for both.
        Statement::Query(_) | Statement::Explain { .. } | Statement::ShowVariable { .. } => true,
        Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => true,
        // A replica refuses READ WRITE and SERIALIZABLE ("cannot use serializable
        // mode in a hot standby").
        Statement::StartTransaction { modes, .. } => {
            access_mode(modes) != Some(TransactionAccessMode::ReadWrite)
                && !modes.contains(&TransactionMode::IsolationLevel(
                    TransactionIsolationLevel::Serializable,
                ))
        }
        // COPY FROM writes; COPY TO a server file or program is meant for the
        // primary's host.
        Statement::Copy { to, target, .. } => *to && *target == CopyTarget::Stdout,
        _ => false,
    }
}

/// Stops at the first thing anywhere in a statement that makes it a write.
struct FindWrite<'a> {
    functions: &'a WriteFunctions,
}

impl Visitor for FindWrite<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        write_if(!is_read_kind(statement))
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        // FOR UPDATE / SHARE lock rows, which a replica cannot; a data-modifying CTE
        // body is a nested statement and is caught by pre_visit_statement as well.
        let modifies = matches!(
            *query.body,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        );
        write_if(!query.locks.is_empty() || modifies)
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        // SELECT INTO creates a table.
        write_if(select.into.is_some())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(call) => write_if(self.functions.contains_object(&call.name)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        // Set-returning calls in FROM, e.g. `SELECT * FROM pg_advisory_lock(1)`.
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => write_if(self.functions.contains_object(name)),
            _ => ControlFlow::Continue(()),
        }
    }
}

fn write_if(writes: bool) -> ControlFlow<()> {
    if writes {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(sql: &str) -> Route {
        classify_statement(sql, &WriteFunctions::default()).route
    }

    fn txn(sql: &str) -> TxnControl {
        classify_statement(sql, &WriteFunctions::default()).txn
    }

    fn assert_reads(statements: &[&str]) {
        for sql in statements {
            assert_eq!(route(sql), Route::Read, "{sql}");
        }
    }

    fn assert_writes(statements: &[&str]) {
        for sql in statements {
            assert_eq!(route(sql), Route::Write, "{sql}");
        }
    }

    #[test]
    fn reads() {
        assert_reads(&[
            "SELECT 1",
            "select a, b from t where id = $1",
            "SELECT * FROM a JOIN b USING (id) WHERE a.x IN (SELECT x FROM c)",
            "SELECT 1 UNION SELECT 2 EXCEPT SELECT 3",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "WITH x AS (SELECT 1), y AS (SELECT * FROM x) SELECT * FROM y",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
            "VALUES (1, 'a'), (2, 'b')",
            "TABLE t",
            "table only s.t",
            "SHOW search_path",
            "SHOW ALL",
            "SHOW TRANSACTION ISOLATION LEVEL",
            "EXPLAIN SELECT * FROM t",
            "EXPLAIN ANALYZE SELECT * FROM t",
            "EXPLAIN (ANALYZE, BUFFERS) SELECT 1",
            "COPY t TO STDOUT",
            "COPY (SELECT * FROM t WHERE a > 1) TO STDOUT WITH (FORMAT csv)",
            "SELECT now(), count(*), lo_get(1), pg_is_in_recovery() FROM t",
            "SELECT * FROM generate_series(1, 10) g",
            "SELECT 'nextval(1)', \"nextval\" FROM t",
            "/* just a comment */ SELECT 1",
            "-- a line comment\nSELECT 1",
        ]);
    }

    #[test]
    fn data_changes_and_ddl() {
        assert_writes(&[
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "CREATE TABLE t (a int)",
            "ALTER TABLE t ADD COLUMN b int",
            "DROP TABLE t",
            "TRUNCATE t",
            "GRANT SELECT ON t TO app",
            "COPY t FROM STDIN",
            "COPY t TO '/tmp/t.csv'",
            "COPY t TO PROGRAM 'gzip > /tmp/t.gz'",
            "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
            "CREATE TABLE t2 AS SELECT * FROM t",
        ]);
    }

    #[test]
    fn locking_reads() {
        assert_writes(&[
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t FOR SHARE",
            "SELECT * FROM t FOR NO KEY UPDATE",
            "SELECT * FROM t FOR KEY SHARE SKIP LOCKED",
            "SELECT * FROM t FOR UPDATE OF t NOWAIT",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)",
            "WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x",
            "SELECT * FROM (SELECT * FROM t FOR SHARE) s",
            "(SELECT 1) UNION ALL (SELECT 2 FOR UPDATE)",
        ]);
    }

    #[test]
    fn writes_hidden_in_queries() {
        assert_writes(&[
            "WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x",
            "WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x",
            "WITH x AS (DELETE FROM t RETURNING *) SELECT count(*) FROM x",
            "WITH a AS (SELECT 1), b AS (DELETE FROM t) SELECT * FROM a",
            "SELECT * INTO t2 FROM t",
            "SELECT 1 INTO TEMP t2",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t",
            "EXPLAIN UPDATE t SET a = 1",
            "EXPLAIN ANALYZE SELECT nextval('s')",
        ]);
    }

    #[test]
    fn writing_functions_anywhere() {
        assert_writes(&[
            "SELECT nextval('s')",
            "SELECT pg_catalog.setval('s', 1)",
            "SELECT currval('s'), lastval()",
            "SELECT * FROM t WHERE id = nextval('s')",
            "SELECT * FROM nextval('s')",
            "SELECT * FROM pg_catalog.nextval('s') AS n",
            "SELECT * FROM t, LATERAL (SELECT nextval('s')) x",
            "SELECT a FROM t GROUP BY a HAVING count(*) > pg_advisory_lock(1)",
            "SELECT * FROM t ORDER BY nextval('s')",
            "SELECT CASE WHEN a THEN pg_try_advisory_xact_lock(1) END FROM t",
            "SELECT * FROM t WHERE a = ANY(SELECT x FROM pg_advisory_lock(1) x)",
            "WITH x AS (SELECT nextval('s')) SELECT * FROM x",
            "SELECT 1 UNION SELECT pg_advisory_unlock_all()",
            "VALUES (nextval('s'))",
            "SELECT pg_notify('chan', 'x')",
            "SELECT set_config('a.b', '1', false)",
            "SELECT pg_terminate_backend(123)",
            "SELECT txid_current()",
            "SELECT pg_current_xact_id()",
            "SELECT lo_unlink(1)",
            "SELECT dblink_exec('conn', 'DELETE FROM t')",
            "SELECT \"NextVal\"('s')",
            "COPY (SELECT nextval('s')) TO STDOUT",
        ]);
    }

    #[test]
    fn configured_write_functions() {
        let functions = WriteFunctions::new(&["app.bump".into()]);
        let route = |sql| classify_statement(sql, &functions).route;
        assert_eq!(route("SELECT app.Bump(1)"), Route::Write);
        assert_eq!(route("SELECT * FROM t WHERE bump(a) > 0"), Route::Write);
        assert_eq!(route("SELECT * FROM bump(1)"), Route::Write);
        assert_eq!(route("SELECT bumpy(1)"), Route::Read);
    }

    #[test]
    fn session_and_utility_statements_go_to_the_primary() {
        assert_writes(&[
            "SET search_path = public",
            "SET TRANSACTION READ ONLY",
            "RESET ALL",
            "DISCARD ALL",
            "LISTEN chan",
            "UNLISTEN *",
            "NOTIFY chan",
            "PREPARE p AS SELECT 1",
            "EXECUTE p",
            "DEALLOCATE p",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CALL proc()",
            "VACUUM t",
            "ANALYZE t",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH 10 FROM c",
            "CHECKPOINT",
        ]);
    }

    #[test]
    fn unparsable_and_unknown_statements_go_to_the_primary() {
        assert_writes(&[
            "SELECT * FROM t WHERE",
            "SELECT 1 +",
            "SELECT 'unterminated",
            "frobnicate the database",
            "SELECT (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
        ]);
    }

    #[test]
    fn transaction_control() {
        let begin = |read_only| TxnControl::Begin { read_only };
        assert_eq!(txn("BEGIN"), begin(false));
        assert_eq!(txn("begin work"), begin(false));
        assert_eq!(txn("START TRANSACTION READ ONLY"), begin(true));
        assert_eq!(
            txn("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            begin(true)
        );
        assert_eq!(txn("BEGIN READ ONLY, READ WRITE"), begin(false));
        assert_eq!(txn("START TRANSACTION READ WRITE"), begin(false));
        assert_eq!(txn("COMMIT"), TxnControl::Commit);
        assert_eq!(txn("END"), TxnControl::Commit);
        assert_eq!(txn("COMMIT AND CHAIN"), TxnControl::Commit);
        assert!(and_chain("COMMIT AND CHAIN"));
        assert!(and_chain("/* pgshard: shard=1 */ rollback and chain;"));
        assert!(!and_chain("COMMIT AND NO CHAIN"));
        assert!(!and_chain("END"));
        assert_eq!(txn("ROLLBACK"), TxnControl::Rollback);
        assert_eq!(txn("ABORT"), TxnControl::Rollback);
        for sql in [
            "SAVEPOINT a",
            "ROLLBACK TO SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "SELECT 1",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
            "ROLLBACK PREPARED 'x'",
        ] {
            assert_eq!(txn(sql), TxnControl::None, "{sql}");
        }
    }

    #[test]
    fn transaction_control_routes() {
        assert_reads(&[
            "BEGIN",
            "START TRANSACTION READ ONLY",
            "BEGIN ISOLATION LEVEL REPEATABLE READ",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT a",
            "ROLLBACK TO SAVEPOINT a",
            "RELEASE SAVEPOINT a",
        ]);
        assert_writes(&[
            "BEGIN READ WRITE",
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
            "ROLLBACK PREPARED 'x'",
        ]);
    }

    #[test]
    fn hints_override_reads_but_not_writes() {
        let functions = WriteFunctions::default();
        let classify = |sql| classify_statement(sql, &functions);
        let primary_read = classify("/* pgshard: role=primary */ SELECT 1");
        assert_eq!(
            (primary_read.route, primary_read.hint),
            (Route::Write, Some(RoleHint::Primary))
        );
        let replica_read = classify("/* pgshard: role=replica */ SELECT 1");
        assert_eq!(
            (replica_read.route, replica_read.hint),
            (Route::Read, Some(RoleHint::Replica))
        );
        let replica_write = classify("/* pgshard: role=replica */ INSERT INTO t VALUES (1)");
        assert_eq!(
            (replica_write.route, replica_write.hint),
            (Route::Write, Some(RoleHint::Replica))
        );
        let bad = classify("/* pgshard: role=leader */ SELECT 1");
        assert_eq!((bad.route, bad.hint), (Route::Read, None));
        assert_eq!(bad.hint_error.map(|e| e.sqlstate()), Some("22023"));
    }

    #[test]
    fn empty_statements_read() {
        assert_reads(&["", "/* nothing */", "-- nothing"]);
    }

    #[test]
    fn statements_too_long_to_parse_go_to_the_primary() {
        let functions = WriteFunctions::new(&[]);
        let literal = "x".repeat(MAX_PARSED_LEN);
        let long = format!("SELECT length('{literal}')");
        assert_eq!(classify_statement(&long, &functions).route, Route::Write);
        let short = format!("SELECT length('{}')", &literal[..1000]);
        assert_eq!(classify_statement(&short, &functions).route, Route::Read);
    }
}
