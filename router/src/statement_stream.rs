//! The statements of a simple query read as its bytes arrive, for a query too large to
//! hold whole: the same boundaries as [`split_statements`](crate::split_statements), all
//! of each short statement, and enough of a long one to know its effect on the session.

use crate::statements::continues_identifier;

/// A statement up to this many bytes (leading whitespace left out) is kept whole; of a
/// longer one, this many first bytes are kept.
pub const STATEMENT_HEAD: usize = 4096;

/// Dollar-quote tags longer than this are not followed (PostgreSQL's are identifiers):
/// the statement is then marked opaque rather than split where the server would not.
const MAX_DOLLAR_TAG: usize = 256;

/// One statement of a streamed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedStatement {
    /// The statement trimmed when [`whole`](Self::whole), else its first
    /// [`STATEMENT_HEAD`] bytes; bytes that are not UTF-8 are replaced.
    pub text: String,
    /// Whether `text` is all of the statement.
    pub whole: bool,
    /// Whether all of the statement was UTF-8 (as far as it was kept).
    pub utf8: bool,
    /// Whether it names, anywhere, a function whose effect outlives the transaction
    /// (`pg_advisory_lock` and its kin, `set_config`, `dblink_connect`).
    pub mentions_session_functions: bool,
    /// Whether the lexer lost track of it (an overlong dollar-quote tag), so its
    /// boundaries may not be the server's.
    pub opaque: bool,
}

/// Where the lexer is, between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Normal,
    /// A `/` that may open a block comment.
    Slash,
    /// A `-` that may open a line comment.
    Dash,
    /// Inside a quoted string or identifier.
    Quoted(u8),
    /// A quote inside `Quoted`: its end, unless the same quote follows (doubled).
    QuoteEnd(u8),
    /// Inside an escape string (`E'…'`).
    Escaped,
    /// After a backslash in an escape string: the next byte is taken as it is.
    Backslash,
    /// A quote inside an escape string: its end, unless another follows.
    EscapedEnd,
    LineComment,
    /// Inside nested block comments; `half` is a `/` or `*` that may pair with the next byte.
    Block {
        depth: u32,
        half: u8,
    },
    /// After a `$` that may open a dollar quote; the tag so far is in `tag`.
    DollarOpen,
    /// Inside a dollar quote, `matched` bytes of its closing tag seen.
    Dollar {
        matched: usize,
    },
}

/// The statement being read.
#[derive(Debug, Default)]
struct Current {
    head: Vec<u8>,
    len: usize,
    /// The last bytes seen, lower-cased, newest in the low byte.
    recent: u128,
    mentions: bool,
    opaque: bool,
}

/// Reads a simple query's text in pieces; see the module doc.
#[derive(Debug)]
pub struct StatementStream {
    lex: Lex,
    prev: u8,
    /// The byte before `prev`.
    before_prev: u8,
    tag: Vec<u8>,
    current: Current,
}

impl Default for StatementStream {
    fn default() -> Self {
        StatementStream {
            lex: Lex::Normal,
            prev: 0,
            before_prev: 0,
            tag: Vec::new(),
            current: Current::default(),
        }
    }
}

/// `name` as the low bytes of a `u128`, lower-case, last byte lowest.
const fn packed(name: &[u8]) -> u128 {
    let mut v = 0u128;
    let mut i = 0;
    while i < name.len() {
        v = (v << 8) | name[i] as u128;
        i += 1;
    }
    v
}

const fn mask(len: usize) -> u128 {
    if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (len * 8)) - 1
    }
}

/// The names [`StatementStream`] looks for, as they end: the byte that ends them, their
/// packed bytes and their mask.
const SESSION_FUNCTIONS: [(u8, u128, u128); 3] = [
    (b'_', packed(b"advisory_"), mask(9)),
    (b'g', packed(b"set_config"), mask(10)),
    (b't', packed(b"dblink_connect"), mask(14)),
];

impl StatementStream {
    /// Reads the next piece of the query text; statements that ended in it go to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamedStatement>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    /// The text ended: the last statement, if any, goes to `out`.
    pub fn finish(&mut self, out: &mut Vec<StreamedStatement>) {
        self.end_statement(out);
        self.lex = Lex::Normal;
    }

    fn byte(&mut self, b: u8, out: &mut Vec<StreamedStatement>) {
        let prev = std::mem::replace(&mut self.prev, b);
        let before_prev = std::mem::replace(&mut self.before_prev, prev);
        let mut lex = self.lex;
        // A byte that turned out not to continue what the one before began is read again
        // as an ordinary byte.
        loop {
            match lex {
                Lex::Slash if b == b'*' => {
                    self.lex = Lex::Block { depth: 1, half: 0 };
                    break;
                }
                Lex::Dash if b == b'-' => {
                    self.lex = Lex::LineComment;
                    break;
                }
                Lex::Slash | Lex::Dash => lex = Lex::Normal,
                Lex::QuoteEnd(q) if b == q => {
                    self.lex = Lex::Quoted(q);
                    break;
                }
                Lex::QuoteEnd(_) => lex = Lex::Normal,
                Lex::Escaped => {
                    self.lex = match b {
                        b'\\' => Lex::Backslash,
                        b'\'' => Lex::EscapedEnd,
                        _ => Lex::Escaped,
                    };
                    break;
                }
                Lex::Backslash => {
                    self.lex = Lex::Escaped;
                    break;
                }
                Lex::EscapedEnd if b == b'\'' => {
                    self.lex = Lex::Escaped;
                    break;
                }
                Lex::EscapedEnd => lex = Lex::Normal,
                Lex::DollarOpen => {
                    if b == b'$' {
                        self.tag.push(b);
                        self.lex = Lex::Dollar { matched: 0 };
                        break;
                    }
                    let ident = b.is_ascii_alphanumeric() || b == b'_';
                    let first = self.tag.len() == 1;
                    if ident && !(first && b.is_ascii_digit()) {
                        self.tag.push(b);
                        if self.tag.len() > MAX_DOLLAR_TAG {
                            self.current.opaque = true;
                            self.lex = Lex::Normal;
                        }
                        break;
                    }
                    lex = Lex::Normal;
                }
                Lex::Normal => {
                    self.lex = match b {
                        b'\''
                            if matches!(prev, b'e' | b'E')
                                && !continues_identifier(before_prev) =>
                        {
                            Lex::Escaped
                        }
                        b'\'' | b'"' => Lex::Quoted(b),
                        b'/' => Lex::Slash,
                        b'-' => Lex::Dash,
                        b'$' if !(prev.is_ascii_alphanumeric() || prev == b'_') => {
                            self.tag.clear();
                            self.tag.push(b);
                            Lex::DollarOpen
                        }
                        b';' => {
                            self.lex = Lex::Normal;
                            self.end_statement(out);
                            return;
                        }
                        _ => Lex::Normal,
                    };
                    break;
                }
                Lex::Quoted(q) => {
                    if b == q {
                        self.lex = Lex::QuoteEnd(q);
                    }
                    break;
                }
                Lex::LineComment => {
                    if b == b'\n' {
                        self.lex = Lex::Normal;
                    }
                    break;
                }
                Lex::Block { depth, half } => {
                    self.lex = match (half, b) {
                        (b'/', b'*') => Lex::Block {
                            depth: depth + 1,
                            half: 0,
                        },
                        (b'*', b'/') if depth == 1 => Lex::Normal,
                        (b'*', b'/') => Lex::Block {
                            depth: depth - 1,
                            half: 0,
                        },
                        (_, b'/' | b'*') => Lex::Block { depth, half: b },
                        _ => Lex::Block { depth, half: 0 },
                    };
                    break;
                }
                Lex::Dollar { matched } => {
                    let matched = if self.tag.get(matched) == Some(&b) {
                        matched + 1
                    } else {
                        // Only a `$` can begin the tag again: none is inside it.
                        usize::from(b == b'$')
                    };
                    self.lex = if matched == self.tag.len() {
                        Lex::Normal
                    } else {
                        Lex::Dollar { matched }
                    };
                    break;
                }
            }
        }
        self.keep(b);
    }

    /// Adds `b` to the statement being read.
    fn keep(&mut self, b: u8) {
        let current = &mut self.current;
        if current.len == 0 && b.is_ascii_whitespace() {
            return;
        }
        current.len += 1;
        if current.head.len() < STATEMENT_HEAD {
            current.head.push(b);
        }
        let lower = b.to_ascii_lowercase();
        current.recent = (current.recent << 8) | u128::from(lower);
        if !current.mentions {
            current.mentions = SESSION_FUNCTIONS
                .iter()
                .any(|&(last, name, mask)| lower == last && current.recent & mask == name);
        }
    }

    fn end_statement(&mut self, out: &mut Vec<StreamedStatement>) {
        let current = std::mem::take(&mut self.current);
        let whole = current.len <= STATEMENT_HEAD;
        let utf8 = std::str::from_utf8(&current.head).is_ok();
        let text = String::from_utf8_lossy(&current.head);
        let text = if whole {
            text.trim().to_string()
        } else {
            text.into_owned()
        };
        if whole && text.is_empty() {
            return;
        }
        out.push(StreamedStatement {
            text,
            whole,
            utf8,
            mentions_session_functions: current.mentions,
            opaque: current.opaque,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split_statements;

    fn streamed(sql: &str, piece: usize) -> Vec<StreamedStatement> {
        let mut stream = StatementStream::default();
        let mut out = Vec::new();
        for chunk in sql.as_bytes().chunks(piece.max(1)) {
            stream.feed(chunk, &mut out);
        }
        stream.finish(&mut out);
        out
    }

    /// A small deterministic generator, so a failure repeats.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as usize
        }
    }

    #[test]
    fn statements_are_split_as_split_statements_splits_them_whatever_the_pieces() {
        let parts = [
            "SELECT 1",
            ";",
            " ",
            "'",
            "''",
            "\"",
            "--",
            "\n",
            "/*",
            "*/",
            "/",
            "*",
            "$",
            "$$",
            "$a$",
            "$1",
            "a",
            "_",
            "x$",
            "; ",
            "SET x = 1",
            "\t",
            "-",
            "E'\\'",
            "é",
            "\\",
            "e",
            "E'",
        ];
        let mut rng = Lcg(7);
        for case in 0..20000 {
            let sql: String = (0..rng.next() % 24)
                .map(|_| parts[rng.next() % parts.len()])
                .collect();
            let expected = split_statements(&sql);
            for piece in [1, 2, 3, 7, 1000] {
                let got = streamed(&sql, piece);
                let texts: Vec<&str> = got.iter().map(|s| s.text.as_str()).collect();
                assert_eq!(texts, expected, "case {case}, pieces of {piece}: {sql:?}");
                assert!(got.iter().all(|s| s.whole && s.utf8 && !s.opaque));
            }
        }
    }

    #[test]
    fn a_long_statement_keeps_its_head_and_what_it_mentions() {
        let literal = "x".repeat(3 * STATEMENT_HEAD);
        let sql = format!(
            "  INSERT INTO t VALUES ('{literal}', pg_advisory_lock(1)); SELECT SET_CONFIG('a', 'b', false); SELECT 1"
        );
        let got = streamed(&sql, 1000);
        assert_eq!(got.len(), 3);
        assert!(!got[0].whole);
        assert!(got[0].text.starts_with("INSERT INTO t VALUES ('xxx"));
        assert_eq!(got[0].text.len(), STATEMENT_HEAD);
        assert!(got[0].mentions_session_functions);
        assert!(got[1].whole && got[1].mentions_session_functions);
        assert!(got[2].whole && !got[2].mentions_session_functions);
        let plain = streamed(
            &format!("INSERT INTO t VALUES ('{literal}', 'reset_at')"),
            7,
        );
        assert!(!plain[0].mentions_session_functions);
        let dblink = streamed(&format!("SELECT dblink_connect('{literal}')"), 3);
        assert!(dblink[0].mentions_session_functions);
    }

    #[test]
    fn an_overlong_dollar_tag_makes_the_statement_opaque() {
        let sql = format!("SELECT ${}$ ; SET x = 1", "a".repeat(MAX_DOLLAR_TAG + 1));
        let got = streamed(&sql, 64);
        assert!(got[0].opaque, "{got:?}");
    }

    #[test]
    fn text_that_is_not_utf8_is_marked() {
        let mut stream = StatementStream::default();
        let mut out = Vec::new();
        stream.feed(b"SET x = '\xe9'", &mut out);
        stream.finish(&mut out);
        assert!(!out[0].utf8);
    }

    #[test]
    fn a_long_statement_pins_only_when_its_head_or_its_functions_may_change_state() {
        use crate::{streamed_session_effect, SessionEffect};
        let literal = "x".repeat(2 * STATEMENT_HEAD);
        let effect = |sql: String| {
            let got = streamed(&sql, 512);
            streamed_session_effect(&got[0])
        };
        let none = [
            format!("INSERT INTO t VALUES ('{literal}')"),
            format!("/* c */ UPDATE t SET v = '{literal}' WHERE reset_at > now()"),
            format!("CREATE TABLE big AS SELECT '{literal}' AS v"),
            "SET LOCAL x = 1".to_string(),
        ];
        for sql in none {
            assert_eq!(effect(sql.clone()), SessionEffect::None, "{}", &sql[..40]);
        }
        let pins = [
            format!("SET search_path = '{literal}'"),
            format!("DO $$BEGIN PERFORM '{literal}'; END$$"),
            format!("SELECT pg_advisory_lock(1), '{literal}'"),
            format!("SELECT '{literal}', set_config('a', 'b', false)"),
            format!("CREATE TEMP TABLE t AS SELECT '{literal}'"),
            format!("/* {literal} */ SELECT 1"),
            "DO $$BEGIN END$$".to_string(),
        ];
        for sql in pins {
            assert!(
                matches!(effect(sql.clone()), SessionEffect::Pin(_)),
                "{}",
                &sql[..20]
            );
        }
        assert_eq!(
            effect("SET x = 1".to_string()),
            SessionEffect::Set {
                name: "x".to_string(),
                value: "1".to_string()
            }
        );
    }
}
