//! Key values written in the file for range and list sharding: `100` or `"m"`.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::cmp::Ordering;
use std::fmt;

/// A shard-key value in `shard_ranges` bounds or `shard_lists` values.
///
/// Integers are for `smallint`, `int` and `bigint` keys; strings for `text` keys and,
/// written as UUIDs, for `uuid` keys. Which keys a value may stand for is checked
/// against the database's `sharded_tables`, not here, since the same list serves
/// every sharded table of the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ShardValue {
    Int(i64),
    Text(String),
}

impl ShardValue {
    /// `"an integer"` or `"a string"`, for messages about mixed kinds.
    pub fn kind(&self) -> &'static str {
        match self {
            ShardValue::Int(_) => "an integer",
            ShardValue::Text(_) => "a string",
        }
    }

    /// Orders two values of the same kind as the shard map will: integers by value,
    /// strings byte by byte (as PostgreSQL's `COLLATE "C"` does). `None` for mixed kinds.
    pub fn compare(&self, other: &ShardValue) -> Option<Ordering> {
        match (self, other) {
            (ShardValue::Int(a), ShardValue::Int(b)) => Some(a.cmp(b)),
            (ShardValue::Text(a), ShardValue::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            _ => None,
        }
    }
}

/// Displays as written in TOML: `42` or `"m"`.
impl fmt::Display for ShardValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardValue::Int(value) => write!(f, "{value}"),
            ShardValue::Text(value) => write!(f, "{value:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for ShardValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShardValueVisitor)
    }
}

/// Takes a TOML integer or string; anything else is a type error naming both.
struct ShardValueVisitor;

impl Visitor<'_> for ShardValueVisitor {
    type Value = ShardValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ShardValue, E> {
        Ok(ShardValue::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ShardValue, E> {
        i64::try_from(value)
            .map(ShardValue::Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &"a 64-bit integer"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ShardValue, E> {
        Ok(ShardValue::Text(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_compare_by_bytes_and_kinds_do_not_mix() {
        let text = |s: &str| ShardValue::Text(s.into());
        assert_eq!(text("Z").compare(&text("a")), Some(Ordering::Less));
        assert_eq!(text("é").compare(&text("z")), Some(Ordering::Greater));
        assert_eq!(
            ShardValue::Int(-5).compare(&ShardValue::Int(3)),
            Some(Ordering::Less)
        );
        assert_eq!(ShardValue::Int(1).compare(&text("1")), None);
    }

    #[test]
    fn displays_as_toml() {
        assert_eq!(ShardValue::Int(-7).to_string(), "-7");
        assert_eq!(ShardValue::Text("m".into()).to_string(), "\"m\"");
    }
}
