//! Statement texts that differ only in the constants they compare: `… WHERE id = 42` and
//! `… WHERE id = 43` share one plan template, the constants read as parameters.
//!
//! Applications that send their keys as literals (the simple query protocol) make every
//! text distinct; parsing each costs far more than the lookup it routes. A constant is
//! taken out only where it is the whole right side of `=` — an integer or a plain quoted
//! string, followed by the end of the statement, `)`, `,`, `;` or a word — where a
//! parameter means exactly the same. Anything unusual (an existing `$n`, dollar quotes,
//! `E'…'` strings) leaves the text as it is.

/// A text with its compared constants replaced by `$1`, `$2`, …, and the constants'
/// texts in order, as text-format parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub text: String,
    pub values: Vec<String>,
}

/// The text with its compared constants taken out, or `None` when it has none (or
/// anything that makes taking them out unsafe).
pub fn normalize(sql: &str) -> Option<Normalized> {
    let b = sql.as_bytes();
    if b.contains(&b'$') {
        return None;
    }
    let mut text = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => i = skip_quoted(b, i, b'\'')?,
            b'"' => i = skip_quoted(b, i, b'"')?,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p)
            }
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            // `E'…'`, `B'…'`, `X'…'`, `U&'…'`: strings with other rules.
            c if c.is_ascii_alphabetic() && matches!(b.get(i + 1), Some(b'\'' | b'&')) => {
                return None
            }
            b'=' if equals_sign(b, i) => {
                let start = skip_blanks(b, i + 1);
                if let Some(end) = constant_end(b, start) {
                    let value = if b[start] == b'\'' {
                        sql[start + 1..end - 1].replace("''", "'")
                    } else {
                        sql[start..end].to_string()
                    };
                    values.push(value);
                    text.push_str(&sql[copied..start]);
                    text.push_str(&format!("${}", values.len()));
                    copied = end;
                    i = end;
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if values.is_empty() {
        return None;
    }
    text.push_str(&sql[copied..]);
    Some(Normalized { text, values })
}

/// A lone `=`: not part of `<=`, `>=`, `!=`, `:=`, `=>`, `==`.
fn equals_sign(b: &[u8], i: usize) -> bool {
    let before = i.checked_sub(1).map(|p| b[p]);
    let after = b.get(i + 1).copied();
    !matches!(before, Some(b'<' | b'>' | b'!' | b':' | b'=')) && !matches!(after, Some(b'>' | b'='))
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The end of a quoted run starting at `i` (a doubled quote stands for itself).
fn skip_quoted(b: &[u8], i: usize, quote: u8) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// The end of a constant at `start` that a parameter can stand for: an integer or a
/// plain string, followed by what ends an operand.
fn constant_end(b: &[u8], start: usize) -> Option<usize> {
    let first = *b.get(start)?;
    let end = if first == b'\'' {
        skip_quoted(b, start, b'\'')?
    } else {
        let digits = usize::from(first == b'-');
        let mut j = start + digits;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == start + digits || j - start > 18 {
            return None;
        }
        j
    };
    let next = skip_blanks(b, end);
    let ends_operand = match b.get(next) {
        None => true,
        Some(b')' | b',' | b';') => true,
        Some(b'-') => b.get(next + 1) == Some(&b'-'),
        // A word (AND, OR, ORDER, LIMIT, …) after a blank.
        Some(c) if c.is_ascii_alphabetic() => next > end,
        _ => false,
    };
    ends_operand.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(sql: &str) -> Option<(String, Vec<String>)> {
        normalize(sql).map(|n| (n.text, n.values))
    }

    #[test]
    fn compared_constants_become_parameters() {
        assert_eq!(
            norm("SELECT name FROM users WHERE id = 42"),
            Some((
                "SELECT name FROM users WHERE id = $1".into(),
                vec!["42".into()]
            ))
        );
        assert_eq!(
            norm("select * from t where k='it''s' and id=-7 order by 1 limit 10"),
            Some((
                "select * from t where k=$1 and id=$2 order by 1 limit 10".into(),
                vec!["it's".into(), "-7".into()]
            ))
        );
        assert_eq!(
            norm("UPDATE t SET n = n + 1 WHERE id = 5;"),
            Some((
                "UPDATE t SET n = n + 1 WHERE id = $1;".into(),
                vec!["5".into()]
            ))
        );
        assert_eq!(
            norm("SELECT 1 FROM t WHERE (id = 3)"),
            Some(("SELECT 1 FROM t WHERE (id = $1)".into(), vec!["3".into()]))
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        for sql in [
            "SELECT 1",
            "SELECT * FROM t WHERE id = $1",
            "SELECT * FROM t WHERE id = 1.5",
            "SELECT * FROM t WHERE id = 1 + 1",
            "SELECT * FROM t WHERE d = '2020-01-01'::date",
            "SELECT * FROM t WHERE s = E'\\n'",
            "SELECT * FROM t WHERE id >= 5",
            "SELECT * FROM t WHERE id <= 5 OR id != 6",
            "SELECT * FROM t WHERE s = 'a' || 'b'",
            "SELECT '= 5' FROM t",
            "SELECT \"a = 5\" FROM t",
            "SELECT * FROM t WHERE id = 5 /* c */",
            "SELECT f(a => 1) FROM t",
            "SELECT * FROM t WHERE id = 12345678901234567890",
            "SELECT * FROM t WHERE s = 'open",
        ] {
            assert_eq!(norm(sql), None, "{sql}");
        }
        // A constant in a comment stays in the text.
        assert_eq!(
            norm("SELECT * FROM t WHERE id = 5 -- id = 6"),
            Some((
                "SELECT * FROM t WHERE id = $1 -- id = 6".into(),
                vec!["5".into()]
            ))
        );
    }
}
