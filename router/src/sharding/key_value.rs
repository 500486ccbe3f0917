//! Shard-key values, read from the text form PostgreSQL's input functions take.

use super::integer::parse_integer;
use super::{KeyType, ShardingError};
use pgshard_config::parse_uuid;
use std::fmt;

/// One row's value of its table's shard-key column.
///
/// The integer types share [`KeyValue::Int`] because they hash alike (see
/// [`KeyType`]). Text compares and hashes by its UTF-8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    /// SQL NULL: hash partitioning places it in partition 0; ranges and lists own no
    /// NULL.
    Null,
    Int(i64),
    Text(String),
    /// The 16 bytes in the order they are written and stored.
    Uuid([u8; 16]),
}

impl KeyValue {
    /// Reads `text` as a value of `key_type`, accepting exactly what the type's
    /// PostgreSQL input function accepts (for integers, as of PostgreSQL 15).
    pub fn from_text(key_type: KeyType, text: &str) -> Result<KeyValue, ShardingError> {
        match key_type {
            KeyType::Int2 | KeyType::Int4 | KeyType::Int8 => {
                parse_integer(key_type, text).map(KeyValue::Int)
            }
            KeyType::Text => Ok(KeyValue::Text(text.to_owned())),
            KeyType::Uuid => {
                parse_uuid(text)
                    .map(KeyValue::Uuid)
                    .map_err(|_| ShardingError::InvalidText {
                        key_type,
                        text: text.to_owned(),
                    })
            }
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, KeyValue::Null)
    }
}

/// Displays as an SQL literal, for messages: `NULL`, `42`, `'it''s'`,
/// `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`.
impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Null => f.write_str("NULL"),
            KeyValue::Int(value) => write!(f, "{value}"),
            KeyValue::Text(text) => write!(f, "'{}'", text.replace('\'', "''")),
            KeyValue::Uuid(bytes) => {
                f.write_str("'")?;
                for (i, byte) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("'")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_type() {
        assert_eq!(
            KeyValue::from_text(KeyType::Int4, " 42 "),
            Ok(KeyValue::Int(42))
        );
        assert_eq!(
            KeyValue::from_text(KeyType::Text, " 42 "),
            Ok(KeyValue::Text(" 42 ".into()))
        );
        assert_eq!(
            KeyValue::from_text(KeyType::Uuid, "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}")
                .unwrap()
                .to_string(),
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"
        );
        assert_eq!(
            KeyValue::from_text(KeyType::Uuid, "a0eebc99"),
            Err(ShardingError::InvalidText {
                key_type: KeyType::Uuid,
                text: "a0eebc99".into()
            })
        );
    }

    #[test]
    fn displays_as_sql() {
        assert_eq!(KeyValue::Null.to_string(), "NULL");
        assert_eq!(KeyValue::Int(-3).to_string(), "-3");
        assert_eq!(KeyValue::Text("it's".into()).to_string(), "'it''s'");
    }
}
