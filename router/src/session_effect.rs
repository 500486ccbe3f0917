//! What a statement does to the server session beyond its own transaction.
//!
//! A pooler that hands one server connection to many clients must know when a statement
//! leaves state behind on the server: settings are replayed on whichever server serves
//! the client next; state that cannot be replayed pins the client to its server.

use crate::statement_stream::StreamedStatement;
use crate::statements::split_statements;

/// The session-level effect of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEffect {
    /// No state outlives the transaction.
    None,
    /// `SET [SESSION] name = value` / `SET name TO value`: `value` is the SQL text of the
    /// value, to be replayed as is.
    Set { name: String, value: String },
    /// `SELECT set_config('name', 'value', false)` with literal arguments and nothing
    /// else: `value` is the raw setting string (as in postgresql.conf), replayed with
    /// set_config() — a list such as search_path 'a, b' is two schemas there, one with SET.
    SetRaw { name: String, value: String },
    /// `RESET name` or `SET name TO DEFAULT`.
    Reset { name: String },
    /// `RESET ALL`.
    ResetAll,
    /// `DISCARD ALL` or `DEALLOCATE ALL`: also drops the server's prepared statements.
    DiscardAll,
    /// State that cannot be replayed elsewhere (LISTEN, temporary tables, session advisory
    /// locks, SQL PREPARE, cursors WITH HOLD, set_config, SET ROLE …): the client keeps its
    /// server connection until it disconnects.
    Pin(&'static str),
}

impl SessionEffect {
    /// Whether the statement changes the session's role or authorization, which a
    /// settings replay cannot carry (RESET ALL leaves both alone).
    pub fn changes_role(&self) -> bool {
        matches!(
            self,
            SessionEffect::Pin(
                "SET ROLE"
                    | "RESET ROLE"
                    | "SET SESSION AUTHORIZATION"
                    | "RESET SESSION AUTHORIZATION"
            )
        )
    }
}

/// The effects of every statement of a simple-query string, in order.
pub fn session_effects(sql: &str) -> Vec<SessionEffect> {
    split_statements(sql)
        .into_iter()
        .map(session_effect)
        .collect()
}

/// First words of the statements whose effect depends on the words after them.
const WORDY_STATEMENTS: [&str; 6] = ["set", "reset", "discard", "deallocate", "declare", "create"];

/// The refusal of SQL that names one of the proxy's own prepared statements.
macro_rules! internal_name_message {
    () => {
        "pgshard: prepared statement names starting with \"pgshard_\" are reserved by the \
         proxy; choose another name"
    };
}

/// Why SQL naming one of the proxy's own prepared statements is refused (SQLSTATE 42939).
pub const INTERNAL_NAME_MESSAGE: &str = internal_name_message!();

/// The statement the proxy sends in place of SQL that names one of its own prepared
/// statements: it fails with 42939 where the original would have run.
pub const INTERNAL_NAME_REFUSAL: &str = concat!(
    "DO $pgshard$BEGIN RAISE EXCEPTION USING ERRCODE = '42939', MESSAGE = '",
    internal_name_message!(),
    "'; END$pgshard$"
);

/// The effect of one statement on a server connection it shares with other clients:
/// as [`session_effect`], and a `DO` block pins too, since its code may run `SET` (or
/// anything else that outlives the transaction) out of the proxy's sight. (On a sharded
/// database, where a pin is refused, `DO` keeps its plain effect.)
pub fn pooled_session_effect(stmt: &str) -> SessionEffect {
    let effect = session_effect(stmt);
    if effect == SessionEffect::None
        && stmt != INTERNAL_NAME_REFUSAL
        && Words::first(strip_leading_comments(stmt)).word(0) == "do"
    {
        return SessionEffect::Pin("a DO block (its code may change session state)");
    }
    effect
}

/// The effect of one statement of a query read as it streamed past
/// ([`StatementStream`](crate::statement_stream::StatementStream)), on a shared server
/// connection: as [`pooled_session_effect`] for a statement kept whole. Of a longer one
/// only the first bytes are known, so it pins when its first words or a function it
/// names could leave state behind; it leaves none when it is an ordinary statement
/// that names no such function, as the whole text would show.
pub fn streamed_session_effect(stmt: &StreamedStatement) -> SessionEffect {
    const UNREAD: SessionEffect =
        SessionEffect::Pin("a statement too large to read whole that may change session state");
    if stmt.opaque {
        return UNREAD;
    }
    if stmt.whole {
        return pooled_session_effect(&stmt.text);
    }
    let body = strip_leading_comments(&stmt.text);
    let words = Words::new(body);
    match words.word(0).as_str() {
        "listen" => SessionEffect::Pin("LISTEN"),
        "prepare" => SessionEffect::Pin("PREPARE"),
        "load" => SessionEffect::Pin("LOAD"),
        "create" if is_temp_create(&words) => SessionEffect::Pin("a temporary table"),
        // A long CREATE reads as any statement: only a temporary one outlives nothing else.
        "create" if !stmt.mentions_session_functions => SessionEffect::None,
        word if word == "do" || WORDY_STATEMENTS.contains(&word) => UNREAD,
        // Before its first word is complete (comments longer than the head).
        "" => UNREAD,
        _ if stmt.mentions_session_functions => UNREAD,
        _ => SessionEffect::None,
    }
}

/// The effect of one statement.
pub fn session_effect(stmt: &str) -> SessionEffect {
    let body = strip_leading_comments(stmt);
    // Most statements are decided by their first word alone: the rest is read only for
    // the few whose effect depends on it.
    let first = Words::first(body).word(0);
    if !WORDY_STATEMENTS.contains(&first.as_str()) {
        return match first.as_str() {
            "listen" => SessionEffect::Pin("LISTEN"),
            "prepare" => SessionEffect::Pin("PREPARE"),
            "load" => SessionEffect::Pin("LOAD"),
            _ => function_effect(body),
        };
    }
    let words = Words::new(body);
    match first.as_str() {
        "set" => set_effect(body, &words),
        "reset" => match words.word(1).as_str() {
            "all" => SessionEffect::ResetAll,
            "" => SessionEffect::None,
            "session" if words.word(2) == "authorization" => {
                SessionEffect::Pin("RESET SESSION AUTHORIZATION")
            }
            "role" | "session_authorization" => SessionEffect::Pin("RESET ROLE"),
            "time" if words.word(2) == "zone" => reset("TimeZone"),
            name => match grammar_setting(name) {
                Some(setting) => reset(setting),
                None => reset(words.raw(1)),
            },
        },
        "discard" if words.word(1) == "all" => SessionEffect::DiscardAll,
        "discard" if words.word(1) == "temp" || words.word(1) == "temporary" => SessionEffect::None,
        "deallocate"
            if words.word(1) == "all" || (words.word(1) == "prepare" && words.word(2) == "all") =>
        {
            SessionEffect::DiscardAll
        }
        "declare" if contains_words(body, &["with", "hold"]) => {
            SessionEffect::Pin("DECLARE … WITH HOLD")
        }
        "create" if is_temp_create(&words) => SessionEffect::Pin("a temporary table"),
        _ => function_effect(body),
    }
}

fn set_effect(body: &str, words: &Words) -> SessionEffect {
    let mut i = 1;
    match words.word(1).as_str() {
        "local" => return SessionEffect::None,
        "session" => match words.word(2).as_str() {
            "authorization" => return SessionEffect::Pin("SET SESSION AUTHORIZATION"),
            "characteristics" => return SessionEffect::Pin("SET SESSION CHARACTERISTICS"),
            _ => i = 2,
        },
        "transaction" | "constraints" => return SessionEffect::None,
        _ => {}
    }
    match words.word(i).as_str() {
        // `SET ROLE r`, `SET role = r`, `SET session_authorization = r`: RESET ALL does not
        // undo them, so they cannot be replayed away; the client keeps its server.
        "role" => return SessionEffect::Pin("SET ROLE"),
        "session_authorization" => return SessionEffect::Pin("SET SESSION AUTHORIZATION"),
        "authorization" if i == 2 => return SessionEffect::Pin("SET SESSION AUTHORIZATION"),
        "time" if words.word(i + 1) == "zone" => {
            return set_value("TimeZone", words.rest_after(i + 1, body).trim());
        }
        "xml" if words.word(i + 1) == "option" => {
            return set_value("xmloption", words.rest_after(i + 1, body).trim());
        }
        word => {
            // `SET SCHEMA 's'`, `SET NAMES 'enc'`: the value follows without `=` or `TO`.
            if let Some(setting) = grammar_setting(word) {
                let value = words.rest_after(i, body).trim();
                if value.is_empty() {
                    return reset(setting);
                }
                return set_value(setting, value);
            }
        }
    }
    let name = words.raw(i);
    if name.is_empty() {
        return SessionEffect::None;
    }
    let after = words.rest_after(i, body).trim_start();
    let value = if let Some(v) = after.strip_prefix('=') {
        v
    } else if after
        .get(..2)
        .is_some_and(|to| to.eq_ignore_ascii_case("to"))
    {
        &after[2..]
    } else {
        return SessionEffect::None;
    };
    set_value(name, value.trim())
}

/// The setting behind `SET SCHEMA` and `SET NAMES`, which name it by a keyword of their own.
fn grammar_setting(word: &str) -> Option<&'static str> {
    match word {
        "schema" => Some("search_path"),
        "names" => Some("client_encoding"),
        _ => None,
    }
}

fn reset(name: &str) -> SessionEffect {
    SessionEffect::Reset {
        name: name.to_string(),
    }
}

/// The prefix of the names the proxy gives its shared prepared statements on the servers.
/// No client may prepare, execute or deallocate a statement so named with SQL.
pub const INTERNAL_STATEMENT_PREFIX: &str = "pgshard_";

/// The name a `DEALLOCATE [PREPARE] name` statement frees (not `DEALLOCATE ALL`), as
/// PostgreSQL reads an identifier: unquoted names fold to lower case.
pub fn deallocated_statement(stmt: &str) -> Option<String> {
    let body = strip_leading_comments(stmt);
    if !crate::lexer::first_word_is(body, "deallocate") {
        return None;
    }
    let words = Words::new(body);
    let i = if words.word(1) == "prepare" { 2 } else { 1 };
    let name = identifier(words.raw(i))?;
    let rest = words.rest_after(i, body).trim();
    (name != "all" || words.raw(i).starts_with('"'))
        .then_some(name)
        .filter(|_| rest.is_empty() || rest == ";")
}

/// Whether a `PREPARE`, `EXECUTE` or `DEALLOCATE` statement names one of the proxy's own
/// prepared statements, which belong to no client.
pub fn names_internal_statement(stmt: &str) -> bool {
    let body = strip_leading_comments(stmt);
    let words = Words::new(body);
    let i = match words.word(0).as_str() {
        "prepare" | "execute" => 1,
        "deallocate" if words.word(1) == "prepare" => 2,
        "deallocate" => 1,
        "explain" => return names_internal_statement(words.rest_after(0, body)),
        _ => return false,
    };
    identifier(words.raw(i)).is_some_and(|name| name.starts_with(INTERNAL_STATEMENT_PREFIX))
}

/// An SQL identifier as PostgreSQL reads it: quoted ones as written, others folded to
/// lower case. Only plain names: `None` for anything else.
fn identifier(raw: &str) -> Option<String> {
    if let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return (!quoted.is_empty() && !quoted.contains('"')).then(|| quoted.to_string());
    }
    (!raw.is_empty() && !raw.contains('"') && !raw.contains('.')).then(|| raw.to_ascii_lowercase())
}

fn set_value(name: &str, value: &str) -> SessionEffect {
    if value.eq_ignore_ascii_case("default") || value.eq_ignore_ascii_case("local") {
        return SessionEffect::Reset {
            name: name.to_string(),
        };
    }
    SessionEffect::Set {
        name: name.to_string(),
        value: value.to_string(),
    }
}

fn is_temp_create(words: &Words) -> bool {
    let w1 = words.word(1);
    let w2 = words.word(2);
    matches!(w1.as_str(), "temp" | "temporary")
        || (matches!(w1.as_str(), "global" | "local")
            && matches!(w2.as_str(), "temp" | "temporary"))
}

fn function_effect(body: &str) -> SessionEffect {
    // One pass, in place, case-insensitively: every statement is read this way, and a
    // statement may be megabytes of literals.
    let b = body.as_bytes();
    let ends_with = |end: usize, suffix: &[u8]| {
        end >= suffix.len() && b[end - suffix.len()..end].eq_ignore_ascii_case(suffix)
    };
    let starts_with = |start: usize, prefix: &[u8]| {
        b.get(start..start + prefix.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(prefix))
    };
    let (mut set_config, mut dblink) = (false, false);
    // Each name has an underscore at a known place: only underscores are looked around.
    for j in memchr::memchr_iter(b'_', b) {
        if let Some(i) = j.checked_sub("advisory".len()) {
            let after = j + 1;
            if starts_with(i, b"advisory_")
                && (ends_with(i, b"pg_") || ends_with(i, b"pg_try_"))
                && !starts_with(after, b"xact")
                && !starts_with(after, b"unlock")
            {
                return SessionEffect::Pin("a session advisory lock");
            }
        }
        set_config |= j
            .checked_sub("set".len())
            .is_some_and(|i| starts_with(i, b"set_config"));
        dblink |= j
            .checked_sub("dblink".len())
            .is_some_and(|i| starts_with(i, b"dblink_connect"));
    }
    if set_config {
        return literal_set_config(body).unwrap_or(SessionEffect::Pin("set_config()"));
    }
    if dblink {
        return SessionEffect::Pin("dblink_connect()");
    }
    SessionEffect::None
}

/// The effect of a statement that is only `SELECT set_config('name', 'value', is_local)`
/// (optionally aliased) with literal arguments: a transaction-local one changes nothing
/// beyond its transaction. `None` for anything else, which pins.
fn literal_set_config(body: &str) -> Option<SessionEffect> {
    use sqlparser::ast::{
        Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr, Statement,
        Value,
    };
    let mut statements =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, body)
            .ok()?;
    let (Some(Statement::Query(query)), None) = (statements.pop(), statements.pop()) else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && select.from.is_empty()
        && query.fetch.is_none()
        && select.selection.is_none()
        && select.having.is_none()
        && select.distinct.is_none()
        && matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.projection.len() == 1;
    if !plain {
        return None;
    }
    let expr = match &select.projection[0] {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
        _ => return None,
    };
    let Expr::Function(function) = expr else {
        return None;
    };
    // pg_dump's scripts and pg_dump itself call it schema-qualified.
    let function_name = crate::plan::names::parts(&function.name);
    let is_set_config = match function_name.as_slice() {
        [function] => function == "set_config",
        [schema, function] => schema == "pg_catalog" && function == "set_config",
        _ => false,
    };
    if !is_set_config {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let literal = |arg: &FunctionArg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(value))) => {
            Some(value.value.clone())
        }
        _ => None,
    };
    let args: Vec<Value> = list.args.iter().map(literal).collect::<Option<_>>()?;
    let [Value::SingleQuotedString(name), Value::SingleQuotedString(value), local] =
        args.as_slice()
    else {
        return None;
    };
    let local = match local {
        Value::Boolean(local) => *local,
        Value::SingleQuotedString(text) => match text.to_ascii_lowercase().as_str() {
            "true" | "on" | "t" | "yes" | "1" => true,
            "false" | "off" | "f" | "no" | "0" => false,
            _ => return None,
        },
        _ => return None,
    };
    // RESET ALL leaves the role alone, so no replay can take it back: as SET ROLE.
    match name.to_ascii_lowercase().as_str() {
        "role" => return Some(SessionEffect::Pin("SET ROLE")),
        "session_authorization" => return Some(SessionEffect::Pin("SET SESSION AUTHORIZATION")),
        _ => {}
    }
    Some(if local {
        SessionEffect::None
    } else {
        SessionEffect::SetRaw {
            name: name.clone(),
            value: value.clone(),
        }
    })
}

fn contains_words(body: &str, seq: &[&str]) -> bool {
    let words: Vec<&str> = body
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(a, b)| a.eq_ignore_ascii_case(b)))
}

fn strip_leading_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.find('\n').map_or("", |p| &rest[p + 1..]);
        } else if s.starts_with("/*") {
            s = s.find("*/").map_or("", |p| &s[p + 2..]);
        } else {
            return s;
        }
    }
}

/// The leading words of a statement, with their byte ranges, for keyword matching.
struct Words<'a> {
    /// Start and end of the first `len` words (at most [`WORDS`]): no allocation, as every
    /// statement a client sends is read this way.
    spans: [(usize, usize); WORDS],
    len: usize,
    text: &'a str,
}

/// How many leading words [`Words`] reads.
const WORDS: usize = 8;

/// A word in lower case, held on the stack when short (keywords and most names are).
enum Lower {
    Short { bytes: [u8; 32], len: usize },
    Long(String),
}

impl Lower {
    fn of(word: &str) -> Lower {
        if word.len() > 32 {
            return Lower::Long(word.to_ascii_lowercase());
        }
        let mut bytes = [0; 32];
        bytes[..word.len()].copy_from_slice(word.as_bytes());
        bytes[..word.len()].make_ascii_lowercase();
        Lower::Short {
            bytes,
            len: word.len(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // ASCII case folding keeps UTF-8 valid.
            Lower::Short { bytes, len } => std::str::from_utf8(&bytes[..*len]).unwrap_or(""),
            Lower::Long(s) => s,
        }
    }
}

impl PartialEq<&str> for Lower {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<'a> Words<'a> {
    /// The first [`WORDS`] words of `body`.
    fn new(body: &'a str) -> Self {
        Words::reading(body, WORDS)
    }

    /// Only the first word of `body`.
    fn first(body: &'a str) -> Self {
        Words::reading(body, 1)
    }

    fn reading(body: &'a str, limit: usize) -> Self {
        let limit = limit.min(WORDS);
        let mut spans = [(0, 0); WORDS];
        let mut len = 0;
        let b = body.as_bytes();
        let mut i = 0;
        while i < b.len() && len < limit {
            if b[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            if b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i = (i + 1).min(b.len());
            } else if b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80 {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'.'
                        || b[i] == b'"'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
            } else {
                break;
            }
            spans[len] = (start, i);
            len += 1;
        }
        Words {
            spans,
            len,
            text: body,
        }
    }

    fn raw(&self, n: usize) -> &str {
        self.spans[..self.len]
            .get(n)
            .map_or("", |&(s, e)| &self.text[s..e])
    }

    fn word(&self, n: usize) -> Lower {
        Lower::of(self.raw(n))
    }

    fn rest_after<'b>(&self, n: usize, body: &'b str) -> &'b str {
        self.spans[..self.len]
            .get(n)
            .map_or("", |&(_, e)| &body[e..])
    }
}

#[cfg(test)]
mod tests {
    use super::SessionEffect::*;
    use super::*;

    fn set(name: &str, value: &str) -> SessionEffect {
        Set {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_do_block_pins_a_shared_connection() {
        let body = "DO $$BEGIN SET enable_seqscan = 0; END$$";
        assert_eq!(session_effect(body), None);
        assert!(matches!(pooled_session_effect(body), Pin(_)));
        assert!(matches!(
            pooled_session_effect("/* c */ do 'BEGIN END'"),
            Pin(_)
        ));
        assert_eq!(pooled_session_effect("SELECT 'do'"), None);
        assert_eq!(pooled_session_effect("DOMAIN"), None);
    }

    #[test]
    fn settings() {
        assert_eq!(
            session_effect("SET search_path = public"),
            set("search_path", "public")
        );
        assert_eq!(
            session_effect("set SESSION statement_timeout TO '5s'"),
            set("statement_timeout", "'5s'")
        );
        assert_eq!(
            session_effect("SET TIME ZONE 'UTC'"),
            set("TimeZone", "'UTC'")
        );
        assert_eq!(
            session_effect("SET pgshard.role='replica'"),
            set("pgshard.role", "'replica'")
        );
        assert_eq!(
            session_effect("SET work_mem TO DEFAULT"),
            Reset {
                name: "work_mem".into()
            }
        );
        assert_eq!(session_effect("SET LOCAL work_mem = '1MB'"), None);
        assert_eq!(
            session_effect("RESET work_mem"),
            Reset {
                name: "work_mem".into()
            }
        );
        assert_eq!(session_effect("reset all"), ResetAll);
        assert_eq!(
            session_effect("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            None
        );
        assert_eq!(session_effect("/* hint */ SET x.y = 1"), set("x.y", "1"));
    }

    #[test]
    fn pins_and_discards() {
        assert!(matches!(session_effect("LISTEN chan"), Pin(_)));
        assert!(matches!(
            session_effect("CREATE TEMP TABLE t (a int)"),
            Pin(_)
        ));
        assert!(matches!(
            session_effect("create global temporary table t (a int)"),
            Pin(_)
        ));
        assert!(matches!(
            session_effect("SELECT pg_advisory_lock(1)"),
            Pin(_)
        ));
        assert!(matches!(
            session_effect("select pg_try_advisory_lock_shared(1)"),
            Pin(_)
        ));
        assert_eq!(session_effect("SELECT pg_advisory_xact_lock(1)"), None);
        assert_eq!(session_effect("SELECT pg_advisory_unlock_all()"), None);
        // A literal set_config() is a SET the proxy can replay; anything else pins.
        assert_eq!(
            session_effect("SELECT set_config('jit', 'off', false)"),
            SetRaw {
                name: "jit".into(),
                value: "off".into()
            }
        );
        assert_eq!(
            session_effect("select set_config('search_path', 'a, b', 'false') AS x"),
            SetRaw {
                name: "search_path".into(),
                value: "a, b".into()
            }
        );
        assert_eq!(
            session_effect("SELECT pg_catalog.set_config('search_path', '', false);"),
            SetRaw {
                name: "search_path".into(),
                value: "".into()
            }
        );
        assert!(matches!(
            session_effect("SELECT other.set_config('search_path', '', false)"),
            Pin(_)
        ));
        assert_eq!(session_effect("SELECT set_config('a.b', '1', true)"), None);
        // Clauses that may keep the call from running are not a plain SET.
        for sql in [
            "SELECT set_config('jit', 'off', false) HAVING false",
            "SELECT set_config('jit', 'off', false) FETCH FIRST 0 ROWS ONLY",
            "SELECT set_config('jit', 'off', false) GROUP BY 1",
        ] {
            assert!(
                !matches!(session_effect(sql), SetRaw { .. }),
                "{sql}: {:?}",
                session_effect(sql)
            );
        }
        assert!(session_effect("SELECT set_config('role', 'bob', false)").changes_role());
        assert!(
            session_effect("SELECT set_config('Session_Authorization', 'bob', true)")
                .changes_role()
        );
        assert!(matches!(
            session_effect("SELECT set_config('a.b', $1, false)"),
            Pin(_)
        ));
        assert!(matches!(
            session_effect("SELECT set_config('a.b', '1', false), 2"),
            Pin(_)
        ));
        assert!(matches!(
            session_effect("SELECT set_config(name, '1', false) FROM t"),
            Pin(_)
        ));
        assert!(matches!(session_effect("PREPARE p AS SELECT 1"), Pin(_)));
        assert!(matches!(
            session_effect("DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
            Pin(_)
        ));
        assert_eq!(session_effect("DECLARE c CURSOR FOR SELECT 1"), None);
        assert!(matches!(session_effect("SET ROLE admin"), Pin(_)));
        assert_eq!(session_effect("DISCARD ALL"), DiscardAll);
        assert_eq!(session_effect("DEALLOCATE ALL"), DiscardAll);
        assert_eq!(session_effect("CREATE TABLE t (a int)"), None);
        assert_eq!(session_effect("SELECT 'SET x = 1'"), None);
        // A multi-byte character where `TO` would be: no setting, no panic.
        assert_eq!(session_effect("SET search_path \u{20ac}x"), None);
    }

    #[test]
    fn every_grammar_form_of_set_and_reset() {
        assert_eq!(
            session_effect("SET SCHEMA 's1'"),
            set("search_path", "'s1'")
        );
        assert_eq!(
            session_effect("set session names 'LATIN1'"),
            set("client_encoding", "'LATIN1'")
        );
        assert_eq!(
            session_effect("SET NAMES DEFAULT"),
            Reset {
                name: "client_encoding".into()
            }
        );
        assert_eq!(
            session_effect("SET XML OPTION DOCUMENT"),
            set("xmloption", "DOCUMENT")
        );
        assert_eq!(
            session_effect("SET SESSION TIME ZONE 'Europe/Rome'"),
            set("TimeZone", "'Europe/Rome'")
        );
        assert_eq!(
            session_effect("SET TIME ZONE LOCAL"),
            Reset {
                name: "TimeZone".into()
            }
        );
        assert_eq!(
            session_effect("RESET TIME ZONE"),
            Reset {
                name: "TimeZone".into()
            }
        );
        assert_eq!(
            session_effect("reset session authorization"),
            Pin("RESET SESSION AUTHORIZATION")
        );
        for pinning in [
            "SET SESSION ROLE r",
            "SET ROLE r",
            "set role = r",
            "SET role TO r",
            "SET SESSION AUTHORIZATION r",
            "SET session_authorization = r",
            "SET SESSION session_authorization TO r",
        ] {
            assert!(matches!(session_effect(pinning), Pin(_)), "{pinning}");
        }
        assert_eq!(session_effect("SET LOCAL ROLE r"), None);
        assert!(session_effect("RESET ROLE").changes_role());
        assert!(session_effect("set session authorization default").changes_role());
        assert!(!session_effect("LISTEN c").changes_role());
    }

    #[test]
    fn statement_names_in_sql() {
        assert_eq!(deallocated_statement("DEALLOCATE s1"), Some("s1".into()));
        assert_eq!(
            deallocated_statement("deallocate prepare \"My S\";"),
            Some("My S".into())
        );
        assert_eq!(
            deallocated_statement("DEALLOCATE PDO_STMT_1"),
            Some("pdo_stmt_1".into())
        );
        assert_eq!(deallocated_statement("DEALLOCATE ALL"), Option::None);
        assert_eq!(
            deallocated_statement("DEALLOCATE s1; SELECT 1"),
            Option::None
        );
        assert_eq!(deallocated_statement("SELECT 1"), Option::None);
        assert!(names_internal_statement("DEALLOCATE pgshard_s1"));
        assert!(names_internal_statement("execute PGSHARD_S2(1)"));
        assert!(names_internal_statement("PREPARE pgshard_x AS SELECT 1"));
        assert!(names_internal_statement("EXPLAIN EXECUTE pgshard_s1"));
        assert!(!names_internal_statement("DEALLOCATE \"PGSHARD_s1\""));
        assert!(!names_internal_statement("EXECUTE mine"));
        assert!(!names_internal_statement("SELECT 'pgshard_s1'"));
    }

    #[test]
    fn multi_statement_strings() {
        assert_eq!(
            session_effects("SET a.b = 1; SELECT 1; RESET a.b"),
            vec![set("a.b", "1"), None, Reset { name: "a.b".into() }]
        );
    }
}
