//! The SQL types a shard-key column may have.

use pgshard_config::ShardKeyType;
use std::fmt;

/// The type of a shard-key column: it decides how a key written in a query or sent
/// as a parameter is read, and which values are in range.
///
/// All integer types hash alike: PostgreSQL makes `hashint2`, `hashint4` and
/// `hashint8` agree on equal values so that hash joins work across them, so a key's
/// shard does not depend on which integer type holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Int2,
    Int4,
    Int8,
    /// `text` and `varchar`, assumed to be stored as UTF-8 (`server_encoding`).
    Text,
    Uuid,
}

impl KeyType {
    /// PostgreSQL's name for the type, as its error messages use it.
    pub fn sql_name(self) -> &'static str {
        match self {
            KeyType::Int2 => "smallint",
            KeyType::Int4 => "integer",
            KeyType::Int8 => "bigint",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
        }
    }

    /// The smallest and largest value of an integer type; `None` for the others.
    pub fn integer_range(self) -> Option<(i64, i64)> {
        match self {
            KeyType::Int2 => Some((i16::MIN.into(), i16::MAX.into())),
            KeyType::Int4 => Some((i32::MIN.into(), i32::MAX.into())),
            KeyType::Int8 => Some((i64::MIN, i64::MAX)),
            KeyType::Text | KeyType::Uuid => None,
        }
    }
}

impl From<ShardKeyType> for KeyType {
    fn from(key_type: ShardKeyType) -> Self {
        match key_type {
            ShardKeyType::Smallint => KeyType::Int2,
            ShardKeyType::Int => KeyType::Int4,
            ShardKeyType::Bigint => KeyType::Int8,
            ShardKeyType::Text => KeyType::Text,
            ShardKeyType::Uuid => KeyType::Uuid,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_types_map_to_key_types() {
        assert_eq!(KeyType::from(ShardKeyType::Bigint), KeyType::Int8);
        assert_eq!(KeyType::from(ShardKeyType::Int).sql_name(), "integer");
        assert_eq!(
            KeyType::from(ShardKeyType::Smallint).integer_range(),
            Some((-32768, 32767))
        );
        assert_eq!(KeyType::from(ShardKeyType::Uuid).integer_range(), None);
    }
}
