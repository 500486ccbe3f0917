//! `SET pgshard.role = 'replica'` and friends: settings the proxy keeps for the session
//! itself.
//!
//! PostgreSQL would accept `SET pgshard.role = …` as a custom placeholder setting and
//! do nothing with it; pgshard must instead act on it and never send it to a server,
//! and answer `SHOW pgshard.role` itself since no server ever saw the value.

use crate::error::HintError;
use crate::lexer::{Lexer, Token};
use crate::param::{ProxyKey, ProxyValue};

/// Whether `sql` may hold a `pgshard.*` setting (it names `pgshard`, quoted or not): a
/// scan without allocation, so the
/// per-query check costs nothing for ordinary queries, which never mention one.
pub fn mentions_proxy_settings(sql: &str) -> bool {
    crate::lexer::contains_ignoring_case(sql.as_bytes(), b"pgshard")
}

/// A statement about one of pgshard's own parameters, which the data plane answers
/// itself (`SET` / `RESET` with CommandComplete, `SHOW` with one row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySetting {
    /// `SET [SESSION | LOCAL] pgshard.<key> { = | TO } value`.
    Set {
        value: ProxyValue,
        /// `SET LOCAL`: the value lasts until the end of the current transaction.
        local: bool,
    },
    /// `RESET pgshard.<key>` or `SET [SESSION | LOCAL] pgshard.<key> TO DEFAULT`.
    Reset { key: ProxyKey, local: bool },
    /// `SHOW pgshard.<key>`.
    Show(ProxyKey),
}

/// Recognizes a `SET`, `RESET` or `SHOW` of a `pgshard.*` parameter in one statement
/// (split a simple-query string first). `None` when the statement is anything else,
/// including settings of other parameters; `Some(Err)` for an unknown `pgshard.*` name
/// (42704), a bad value (22023) or a malformed statement (42601).
pub fn proxy_setting(statement: &str) -> Option<Result<ProxySetting, HintError>> {
    if !mentions_proxy_settings(statement) {
        return None;
    }
    let mut tokens: Vec<Token> = Lexer::new(statement).collect();
    while tokens.last() == Some(&Token::Symbol(';')) {
        tokens.pop();
    }
    let verb = tokens.first()?;
    let (verb, mut i) = if verb.is_keyword("set") {
        ("SET", 1)
    } else if verb.is_keyword("reset") {
        ("RESET", 1)
    } else if verb.is_keyword("show") {
        ("SHOW", 1)
    } else {
        return None;
    };
    let mut local = false;
    if verb == "SET" {
        if tokens.get(i).is_some_and(|t| t.is_keyword("local")) {
            local = true;
            i += 1;
        } else if tokens.get(i).is_some_and(|t| t.is_keyword("session")) {
            i += 1;
        }
    }
    let (name, after_name) = dotted_name(&tokens, i)?;
    let prefix = name.get(..8)?;
    if !prefix.eq_ignore_ascii_case("pgshard.") {
        return None;
    }
    Some(parse(verb, &name, local, &tokens[after_name..]))
}

/// The rest of the statement after a `pgshard.*` name.
fn parse(verb: &str, name: &str, local: bool, rest: &[Token]) -> Result<ProxySetting, HintError> {
    let key = ProxyKey::from_name(&name[8..]).ok_or_else(|| HintError::UnknownParameter {
        name: name.to_string(),
    })?;
    let syntax = || HintError::Syntax {
        statement: format!("{verb} {name}"),
    };
    match (verb, rest) {
        ("RESET", []) => Ok(ProxySetting::Reset { key, local: false }),
        ("SHOW", []) => Ok(ProxySetting::Show(key)),
        ("SET", [op, value]) if *op == Token::Symbol('=') || op.is_keyword("to") => {
            if value.is_keyword("default") {
                return Ok(ProxySetting::Reset { key, local });
            }
            match value {
                Token::Word { text, .. } | Token::Str(text) => Ok(ProxySetting::Set {
                    value: key.parse_value(text)?,
                    local,
                }),
                _ => Err(syntax()),
            }
        }
        _ => Err(syntax()),
    }
}

/// A name such as `pgshard.role`, `"pgshard".role` or `"pgshard.role"` starting at
/// token `i`, as one string, and the index of the token after it.
fn dotted_name(tokens: &[Token], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let Some(Token::Word { text, .. }) = tokens.get(i) else {
            return None;
        };
        name.push_str(text);
        i += 1;
        if tokens.get(i) != Some(&Token::Symbol('.')) {
            return Some((name, i));
        }
        name.push('.');
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_queries_are_rejected_by_the_quick_scan() {
        assert!(!mentions_proxy_settings("SELECT * FROM items WHERE id = 1"));
        assert!(mentions_proxy_settings("set PGSHARD.role = 'primary'"));
        assert_eq!(proxy_setting("SET search_path = a"), None);
    }
    use crate::param::RoleHint;

    fn set(role: Option<RoleHint>, local: bool) -> Option<Result<ProxySetting, HintError>> {
        Some(Ok(ProxySetting::Set {
            value: ProxyValue::Role(role),
            local,
        }))
    }

    #[test]
    fn set_in_every_spelling() {
        let primary = set(Some(RoleHint::Primary), false);
        assert_eq!(proxy_setting("SET pgshard.role = 'primary'"), primary);
        assert_eq!(proxy_setting("set PGSHARD.ROLE to primary;"), primary);
        assert_eq!(
            proxy_setting("SET SESSION \"pgshard\".role='primary'"),
            primary
        );
        assert_eq!(proxy_setting("SET \"pgshard.role\" TO 'PRIMARY'"), primary);
        assert_eq!(
            proxy_setting("/* app */ SET pgshard.role = replica"),
            set(Some(RoleHint::Replica), false)
        );
        assert_eq!(
            proxy_setting("SET LOCAL pgshard.role = 'auto'"),
            set(None, true)
        );
    }

    #[test]
    fn reset_and_show() {
        let reset = |local| {
            Some(Ok(ProxySetting::Reset {
                key: ProxyKey::Role,
                local,
            }))
        };
        assert_eq!(proxy_setting("RESET pgshard.role"), reset(false));
        assert_eq!(proxy_setting("SET pgshard.role TO DEFAULT"), reset(false));
        assert_eq!(
            proxy_setting("SET LOCAL pgshard.role = default"),
            reset(true)
        );
        assert_eq!(
            proxy_setting("SHOW pgshard.role;"),
            Some(Ok(ProxySetting::Show(ProxyKey::Role)))
        );
    }

    #[test]
    fn the_shard_setting() {
        assert_eq!(
            proxy_setting("SET pgshard.shard = 2"),
            Some(Ok(ProxySetting::Set {
                value: ProxyValue::Shard(Some(2)),
                local: false
            }))
        );
        assert_eq!(
            proxy_setting("SET LOCAL pgshard.shard TO auto"),
            Some(Ok(ProxySetting::Set {
                value: ProxyValue::Shard(None),
                local: true
            }))
        );
        assert_eq!(
            proxy_setting("SHOW pgshard.shard"),
            Some(Ok(ProxySetting::Show(ProxyKey::Shard)))
        );
        assert_eq!(
            proxy_setting("SET pgshard.shard = 'x'")
                .unwrap()
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
    }

    #[test]
    fn other_statements_are_not_ours() {
        for statement in [
            "SET search_path = public",
            "SET pgshard = 1",
            "RESET ALL",
            "SHOW ALL",
            "SELECT 'SET pgshard.role = primary'",
            "SET TIME ZONE 'UTC'",
            "",
            ";",
        ] {
            assert_eq!(proxy_setting(statement), None, "{statement}");
        }
    }

    #[test]
    fn errors_carry_postgresql_codes() {
        let code = |statement| proxy_setting(statement).unwrap().unwrap_err().sqlstate();
        assert_eq!(code("SET pgshard.role = 'leader'"), "22023");
        assert_eq!(code("SET pgshard.shards = 3"), "42704");
        assert_eq!(code("RESET pgshard.rol"), "42704");
        assert_eq!(code("SHOW pgshard.role.x"), "42704");
        assert_eq!(code("SET pgshard.role 'primary'"), "42601");
        assert_eq!(code("SET pgshard.role = primary, replica"), "42601");
        assert_eq!(code("SET pgshard.role = 'primary"), "42601");
        assert_eq!(code("RESET pgshard.role now"), "42601");
        assert_eq!(
            proxy_setting("SET pgshard.role = 'x'")
                .unwrap()
                .unwrap_err()
                .to_string(),
            "invalid value for parameter \"pgshard.role\": \"x\""
        );
    }
}
