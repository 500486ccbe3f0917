//! A tiny SQL tokenizer for the few statements and comments pgshard reads by itself.
//!
//! `SET pgshard.role = 'replica'` and `/* pgshard: role=replica */` are read on every
//! statement the data plane sees, so they are recognized with this lexer instead of a
//! full SQL parse.

use crate::statements::skip_block_comment;

/// Whether `needle` (ASCII, lower case) occurs in `haystack` in any ASCII case. Every
/// statement a client sends is searched this way for a few names, so bytes are compared
/// only where the first one matches.
pub fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, &haystack[..=last_start])
        .any(|i| haystack[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Whether the first word of `body` (letters, digits, `_`) is `word` (lower case), in
/// any case: a cheap look before reading a statement further.
pub(crate) fn first_word_is(body: &str, word: &str) -> bool {
    let b = body.as_bytes();
    b.len() >= word.len()
        && b[..word.len()].eq_ignore_ascii_case(word.as_bytes())
        && !b
            .get(word.len())
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// One token of SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// A keyword or identifier; `quoted` for a `"double-quoted"` identifier, whose text
    /// is unescaped and keeps its case.
    Word { text: String, quoted: bool },
    /// A `'single-quoted'` string, unescaped.
    Str(String),
    /// Any other character, e.g. `=`, `.`, `,` or `;`.
    Symbol(char),
    /// A quoted word or string with no closing quote: the rest of the text.
    Unterminated(&'a str),
}

impl Token<'_> {
    /// Whether this is the unquoted word `word`, compared case-insensitively as SQL
    /// keywords are.
    pub(crate) fn is_keyword(&self, word: &str) -> bool {
        matches!(self, Token::Word { text, quoted: false } if text.eq_ignore_ascii_case(word))
    }
}

/// Yields the tokens of a text, skipping blanks and comments.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lexer { text, pos: 0 }
    }

    fn skip_blanks_and_comments(&mut self) {
        let b = self.text.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if b[self.pos..].starts_with(b"--") {
                self.pos = b[self.pos..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| self.pos + p + 1);
            } else if b[self.pos..].starts_with(b"/*") {
                self.pos = skip_block_comment(b, self.pos);
            } else {
                return;
            }
        }
    }

    /// Reads a quoted run starting at the opening quote; a doubled quote stands for
    /// itself. `None` when the closing quote is missing.
    fn quoted(&mut self, quote: char) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.text[self.pos + 1..].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                if chars.peek().is_some_and(|&(_, next)| next == quote) {
                    chars.next();
                } else {
                    self.pos += 1 + i + 1;
                    return Some(out);
                }
            }
            out.push(c);
        }
        None
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        self.skip_blanks_and_comments();
        let c = self.text[self.pos..].chars().next()?;
        let token = match c {
            '\'' | '"' => match self.quoted(c) {
                Some(text) if c == '"' => Token::Word { text, quoted: true },
                Some(text) => Token::Str(text),
                None => {
                    let rest = &self.text[self.pos..];
                    self.pos = self.text.len();
                    Token::Unterminated(rest)
                }
            },
            c if is_word_char(c) => {
                let rest = &self.text[self.pos..];
                let len = rest.find(|c| !is_word_char(c)).unwrap_or(rest.len());
                self.pos += len;
                Token::Word {
                    text: rest[..len].to_string(),
                    quoted: false,
                }
            }
            c => {
                self.pos += c.len_utf8();
                Token::Symbol(c)
            }
        };
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Token<'static> {
        Token::Word {
            text: text.into(),
            quoted: false,
        }
    }

    #[test]
    fn words_strings_and_symbols() {
        let tokens: Vec<_> = Lexer::new("SET \"Pg\"\"x\".role TO 'it''s';").collect();
        assert_eq!(
            tokens,
            vec![
                word("SET"),
                Token::Word {
                    text: "Pg\"x".into(),
                    quoted: true
                },
                Token::Symbol('.'),
                word("role"),
                word("TO"),
                Token::Str("it's".into()),
                Token::Symbol(';'),
            ]
        );
    }

    #[test]
    fn skips_comments_including_nested_ones() {
        let tokens: Vec<_> = Lexer::new("/* a /* b */ c */ x -- y\n z").collect();
        assert_eq!(tokens, vec![word("x"), word("z")]);
    }

    #[test]
    fn unterminated_quotes_end_the_text() {
        let tokens: Vec<_> = Lexer::new("a 'bc").collect();
        assert_eq!(tokens, vec![word("a"), Token::Unterminated("'bc")]);
        assert!(word("Set").is_keyword("set"));
        assert!(!Token::Str("set".into()).is_keyword("set"));
    }

    #[test]
    fn searches_ignore_ascii_case() {
        assert!(contains_ignoring_case(b"SELECT PgShard.role", b"pgshard"));
        assert!(!contains_ignoring_case(b"SELECT pgshar", b"pgshard"));
        assert!(first_word_is("DEALLOCATE s1", "deallocate"));
        assert!(!first_word_is("deallocated", "deallocate"));
        assert!(!first_word_is("dealloc", "deallocate"));
    }
}
