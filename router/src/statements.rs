//! Splitting a simple-query string into its statements.

/// Splits on top-level semicolons, skipping quoted strings, quoted identifiers, dollar
/// quotes and comments, so `SELECT ';'; SET x = 1` is two statements. Empty statements
/// are dropped; each statement is trimmed.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' if opens_escape_string(bytes, i) => i = skip_escape_string(bytes, i),
            b'\'' | b'"' => i = skip_quoted(bytes, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(bytes, i),
            b';' => {
                push(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => {
                i += 1;
                while i < bytes.len() && !SPECIAL[bytes[i] as usize] {
                    i += 1;
                }
            }
        }
    }
    push(&mut out, &sql[start..]);
    out
}

/// The bytes [`split_statements`] stops at: the rest of a statement is skipped in a
/// tight loop, a byte per table lookup.
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 6 {
        table[b"'\"-/$;"[i] as usize] = true;
        i += 1;
    }
    table
};

/// How many commands PostgreSQL's parser finds in `sql`: its statements, leaving out those
/// that are only comments (`SELECT 1; -- done` is one command).
pub fn command_count(sql: &str) -> usize {
    split_statements(sql)
        .into_iter()
        .filter(|stmt| !only_comments(stmt.as_bytes()))
        .count()
}

fn only_comments(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            _ => return false,
        }
    }
    true
}

fn push<'a>(out: &mut Vec<&'a str>, stmt: &'a str) {
    let s = stmt.trim();
    if !s.is_empty() {
        out.push(s);
    }
}

/// Whether a byte may continue an identifier, as PostgreSQL's lexer reads one.
pub(crate) fn continues_identifier(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Whether the quote at `i` opens an escape string (`E'…'`), in which a backslash
/// escapes the next byte (`E'\''` is one quote): an `E` before it that does not end an
/// identifier.
fn opens_escape_string(b: &[u8], i: usize) -> bool {
    i >= 1 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !continues_identifier(b[i - 2]))
}

fn skip_escape_string(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_quoted(b: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// The offset just past the block comment opening at `start`; the end of `b` when it
/// is never closed.
pub(crate) fn skip_block_comment(b: &[u8], start: usize) -> usize {
    // PostgreSQL block comments nest.
    let mut depth = 0;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

fn skip_dollar_quoted(b: &[u8], start: usize) -> usize {
    // $tag$ ... $tag$; a `$1` parameter or a `$` inside an identifier is not a quote.
    if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
        return start + 1;
    }
    let mut j = start + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        if j == start + 1 && b[j].is_ascii_digit() {
            return start + 1;
        }
        j += 1;
    }
    if j >= b.len() || b[j] != b'$' {
        return start + 1;
    }
    let tag = &b[start..=j];
    let body = j + 1;
    b[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(b.len(), |p| body + p + tag.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_are_counted_as_postgres_counts_them() {
        assert_eq!(super::command_count("SELECT 1"), 1);
        assert_eq!(super::command_count("SELECT 1; -- done"), 1);
        assert_eq!(
            super::command_count("/* a */ SELECT ';'; /* b /* nested */ */"),
            1
        );
        assert_eq!(super::command_count("SELECT 1; SELECT 2"), 2);
        assert_eq!(super::command_count(" ; -- nothing"), 0);
    }

    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "SELECT ';' ; SET x = 1;; -- a; comment\nSELECT $$;$$, $a$ ; $a$, \"a;b\", $1 /* ; /* ; */ */";
        assert_eq!(
            split_statements(sql),
            vec![
                "SELECT ';'",
                "SET x = 1",
                "-- a; comment\nSELECT $$;$$, $a$ ; $a$, \"a;b\", $1 /* ; /* ; */ */"
            ]
        );
    }

    #[test]
    fn a_backslash_escapes_a_quote_in_an_escape_string_only() {
        assert_eq!(
            split_statements(r"SELECT E'\''; SET search_path = evil; --'"),
            vec![r"SELECT E'\''", "SET search_path = evil", "--'"]
        );
        assert_eq!(
            split_statements(r"SELECT e'a\\'; SELECT 'b\'; SELECT 1"),
            vec![r"SELECT e'a\\'", r"SELECT 'b\'", "SELECT 1"]
        );
        // `abce'…'` is an identifier and then a standard string.
        assert_eq!(
            split_statements(r"SELECT abce'x\'; SELECT 1"),
            vec![r"SELECT abce'x\'", "SELECT 1"]
        );
    }

    #[test]
    fn unterminated_quotes_do_not_panic() {
        assert_eq!(split_statements("SELECT 'abc"), vec!["SELECT 'abc"]);
        assert_eq!(split_statements("SELECT $x$ abc"), vec!["SELECT $x$ abc"]);
        assert_eq!(split_statements("/* abc"), vec!["/* abc"]);
        assert!(split_statements(" ; ; ").is_empty());
    }
}
