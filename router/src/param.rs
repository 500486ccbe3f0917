//! pgshard's own parameters: their names and the values they take.
//!
//! They are set per session with `SET pgshard.<name> = value` and per statement with a
//! `/* pgshard: name=value */` comment. Both go through this one table, so adding a
//! parameter (e.g. `shard`) means adding a key and its value parser here.

use crate::error::HintError;
use std::fmt;

/// Where the user asks for statements to run, overriding the classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleHint {
    /// On the primary, even reads: e.g. to read a row just written by another
    /// connection.
    Primary,
    /// On a replica if possible, e.g. a report that tolerates lag even right after this
    /// session wrote. Only reads can obey it: a write still goes to the primary, since a
    /// replica would only fail it ("cannot execute INSERT in a read-only transaction").
    Replica,
}

/// A parameter pgshard handles itself and never sends to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKey {
    /// `pgshard.role`: `primary`, `replica` or `auto` (the default: by classification).
    Role,
    /// `pgshard.shard`: a shard number (from 0) that gets every statement unchanged,
    /// or `auto` / `any` (the default: by the statement's shard keys).
    Shard,
}

impl ProxyKey {
    /// The name without the `pgshard.` prefix, as written in hint comments.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKey::Role => "role",
            ProxyKey::Shard => "shard",
        }
    }

    /// The key named `name` (without prefix), case-insensitively as PostgreSQL
    /// compares parameter names.
    pub fn from_name(name: &str) -> Option<ProxyKey> {
        [ProxyKey::Role, ProxyKey::Shard]
            .into_iter()
            .find(|key| key.name().eq_ignore_ascii_case(name))
    }

    /// The value a session starts with, and gets back on `RESET`.
    pub fn default_value(self) -> ProxyValue {
        match self {
            ProxyKey::Role => ProxyValue::Role(None),
            ProxyKey::Shard => ProxyValue::Shard(None),
        }
    }

    /// Parses a value given as text (a string or a bare word), case-insensitively.
    pub fn parse_value(self, text: &str) -> Result<ProxyValue, HintError> {
        let invalid = |allowed| HintError::InvalidValue {
            key: self.name(),
            value: text.to_string(),
            allowed,
        };
        match self {
            ProxyKey::Role => match text.trim().to_ascii_lowercase().as_str() {
                "primary" => Ok(ProxyValue::Role(Some(RoleHint::Primary))),
                "replica" => Ok(ProxyValue::Role(Some(RoleHint::Replica))),
                "auto" => Ok(ProxyValue::Role(None)),
                _ => Err(invalid("primary, replica, auto")),
            },
            ProxyKey::Shard => match text.trim().to_ascii_lowercase().as_str() {
                "auto" | "any" => Ok(ProxyValue::Shard(None)),
                number if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                    number
                        .parse()
                        .map(|shard| ProxyValue::Shard(Some(shard)))
                        .map_err(|_| invalid("a shard number from 0, auto"))
                }
                _ => Err(invalid("a shard number from 0, auto")),
            },
        }
    }
}

/// A value of one [`ProxyKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyValue {
    /// `None` is `auto`: route by classification.
    Role(Option<RoleHint>),
    /// `None` is `auto`: route by the statement's shard keys.
    Shard(Option<usize>),
}

impl ProxyValue {
    /// The key this is a value of.
    pub fn key(self) -> ProxyKey {
        match self {
            ProxyValue::Role(_) => ProxyKey::Role,
            ProxyValue::Shard(_) => ProxyKey::Shard,
        }
    }
}

/// Displays as `SHOW` should answer, e.g. `replica` or `auto`.
impl fmt::Display for ProxyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyValue::Role(Some(RoleHint::Primary)) => "primary",
            ProxyValue::Role(Some(RoleHint::Replica)) => "replica",
            ProxyValue::Role(None) | ProxyValue::Shard(None) => "auto",
            ProxyValue::Shard(Some(shard)) => return write!(f, "{shard}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_name() {
        assert_eq!(ProxyKey::from_name("ROLE"), Some(ProxyKey::Role));
        assert_eq!(ProxyKey::from_name("Shard"), Some(ProxyKey::Shard));
        assert_eq!(ProxyKey::from_name("shards"), None);
        assert_eq!(ProxyKey::Role.default_value(), ProxyValue::Role(None));
    }

    #[test]
    fn role_values() {
        let role = |text| ProxyKey::Role.parse_value(text);
        assert_eq!(
            role("Primary"),
            Ok(ProxyValue::Role(Some(RoleHint::Primary)))
        );
        assert_eq!(
            role("replica"),
            Ok(ProxyValue::Role(Some(RoleHint::Replica)))
        );
        assert_eq!(role("auto"), Ok(ProxyValue::Role(None)));
        assert_eq!(
            role("standby"),
            Err(HintError::InvalidValue {
                key: "role",
                value: "standby".into(),
                allowed: "primary, replica, auto"
            })
        );
    }

    #[test]
    fn shard_values() {
        let shard = |text| ProxyKey::Shard.parse_value(text);
        assert_eq!(shard(" 3 "), Ok(ProxyValue::Shard(Some(3))));
        assert_eq!(shard("AUTO"), Ok(ProxyValue::Shard(None)));
        assert_eq!(shard("any"), Ok(ProxyValue::Shard(None)));
        for bad in ["-1", "x", "", "1.5", "99999999999999999999999"] {
            assert_eq!(shard(bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
        assert_eq!(ProxyKey::Shard.default_value(), ProxyValue::Shard(None));
        assert_eq!(ProxyValue::Shard(Some(2)).to_string(), "2");
        assert_eq!(ProxyValue::Shard(None).to_string(), "auto");
        assert_eq!(ProxyValue::Shard(Some(2)).key(), ProxyKey::Shard);
    }

    #[test]
    fn values_display_as_show_answers() {
        for text in ["primary", "replica", "auto"] {
            let value = ProxyKey::Role.parse_value(text).unwrap();
            assert_eq!(value.to_string(), text);
            assert_eq!(value.key(), ProxyKey::Role);
        }
    }
}
