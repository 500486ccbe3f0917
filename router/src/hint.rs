//! Per-statement hints: `/* pgshard: role=primary */` before a statement.
//!
//! A comment is the one place an application (or its ORM) can attach routing wishes to
//! a single statement without changing the SQL the server sees. Only block comments
//! before the statement count; the comment must start with `pgshard:` and holds
//! `key=value` pairs separated by blanks or commas, e.g.
//! `/* pgshard: role = 'replica', shard=3 */`. Unknown keys are ignored so that newer
//! applications work with older proxies; a bad value for a known key is an error.

use crate::error::HintError;
use crate::lexer::{Lexer, Token};
use crate::param::{ProxyKey, ProxyValue, RoleHint};
use crate::statements::skip_block_comment;

/// What the hint comments before one statement ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// `role=primary|replica`; `role=auto` or no role leaves it `None`.
    pub role: Option<RoleHint>,
    /// `shard=N`: run the statement unchanged on shard N; `shard=auto` (or `any`) or
    /// no shard leaves it `None`.
    pub shard: Option<usize>,
}

impl Hints {
    fn apply(&mut self, value: ProxyValue) {
        match value {
            ProxyValue::Role(role) => self.role = role,
            ProxyValue::Shard(shard) => self.shard = shard,
        }
    }
}

/// The hints in the block comments that open `statement`; later comments and pairs
/// override earlier ones.
pub fn statement_hints(statement: &str) -> Result<Hints, HintError> {
    hints_from_comments(&leading_comments(statement).0)
}

/// The hints in comment texts as returned by [`leading_comments`].
pub(crate) fn hints_from_comments(comments: &[&str]) -> Result<Hints, HintError> {
    let mut hints = Hints::default();
    for comment in comments {
        if let Some(pairs) = pgshard_comment(comment) {
            for (key, value) in key_values(pairs) {
                if let Some(key) = ProxyKey::from_name(&key) {
                    hints.apply(key.parse_value(&value)?);
                }
            }
        }
    }
    Ok(hints)
}

/// The texts inside the block comments that open `statement` (`--` comments are
/// skipped), and the statement after them.
pub(crate) fn leading_comments(statement: &str) -> (Vec<&str>, &str) {
    let mut comments = Vec::new();
    let mut rest = statement;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |p| &after[p + 1..]);
        } else if rest.starts_with("/*") {
            let end = skip_block_comment(rest.as_bytes(), 0);
            let inner = &rest[2..end];
            comments.push(inner.strip_suffix("*/").unwrap_or(inner));
            rest = &rest[end..];
        } else {
            return (comments, rest);
        }
    }
}

/// The text after `pgshard:` if the comment starts with it (blanks and case aside).
fn pgshard_comment(comment: &str) -> Option<&str> {
    let text = comment.trim_start();
    let prefix = text.get(..7)?;
    if !prefix.eq_ignore_ascii_case("pgshard") {
        return None;
    }
    text[7..].trim_start().strip_prefix(':')
}

/// The `key=value` pairs of a hint comment, keys as written. Tokens that do not form
/// a pair are skipped; a key with `=` but no value gets an empty value.
fn key_values(text: &str) -> Vec<(String, String)> {
    let tokens: Vec<Token> = Lexer::new(text).collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let (Token::Word { text: key, .. }, Some(Token::Symbol('='))) =
            (&tokens[i], tokens.get(i + 1))
        {
            let value = match tokens.get(i + 2) {
                Some(Token::Word { text, .. } | Token::Str(text)) => {
                    i += 3;
                    text.clone()
                }
                _ => {
                    i += 2;
                    String::new()
                }
            };
            pairs.push((key.clone(), value));
        } else {
            i += 1;
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(statement: &str) -> Option<RoleHint> {
        statement_hints(statement).unwrap().role
    }

    #[test]
    fn reads_the_role() {
        assert_eq!(
            role("/* pgshard: role=primary */ SELECT 1"),
            Some(RoleHint::Primary)
        );
        assert_eq!(
            role("/*pgshard:role=replica*/SELECT 1"),
            Some(RoleHint::Replica)
        );
        assert_eq!(
            role("  /*  PgShard :  role = 'Replica' , shard=3 */\n SELECT 1"),
            Some(RoleHint::Replica)
        );
        assert_eq!(role("/* pgshard: role=auto */ SELECT 1"), None);
        assert_eq!(role("SELECT 1"), None);
    }

    #[test]
    fn only_leading_pgshard_block_comments_count() {
        assert_eq!(role("SELECT 1 /* pgshard: role=primary */"), None);
        assert_eq!(role("-- pgshard: role=primary\nSELECT 1"), None);
        assert_eq!(role("/* role=primary */ SELECT 1"), None);
        assert_eq!(role("/* pgsharding: role=primary */ SELECT 1"), None);
        assert_eq!(
            role("-- app\n/* trace */ /* pgshard: role=primary */ SELECT 1"),
            Some(RoleHint::Primary)
        );
        assert_eq!(
            role("/* pgshard: role=replica */ /* pgshard: role=primary */ SELECT 1"),
            Some(RoleHint::Primary)
        );
    }

    #[test]
    fn unknown_keys_are_ignored_and_bad_values_rejected() {
        assert_eq!(
            role("/* pgshard: colour=blue role=primary junk */ SELECT 1"),
            Some(RoleHint::Primary)
        );
        assert_eq!(
            statement_hints("/* pgshard: role=leader */ SELECT 1")
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
        assert!(statement_hints("/* pgshard: role= */ SELECT 1").is_err());
    }

    #[test]
    fn reads_the_shard() {
        let shard = |statement| statement_hints(statement).unwrap().shard;
        assert_eq!(shard("/* pgshard: shard=2 */ SELECT 1"), Some(2));
        assert_eq!(
            shard("/* pgshard: role=replica, shard = '0' */ SELECT 1"),
            Some(0)
        );
        assert_eq!(shard("/* pgshard: shard=auto */ SELECT 1"), None);
        assert_eq!(shard("SELECT 1"), None);
        assert_eq!(
            statement_hints("/* pgshard: shard=x */ SELECT 1")
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
    }

    #[test]
    fn leading_comments_and_body() {
        assert_eq!(
            leading_comments("/* a /* b */ */ -- c\n /* d */ SELECT 1 /* e */"),
            (vec![" a /* b */ ", " d "], "SELECT 1 /* e */")
        );
        assert_eq!(leading_comments("/* open"), (vec![" open"], ""));
        assert_eq!(leading_comments(""), (vec![], ""));
    }
}
