//! Why a key value could not be read or placed on a shard.

use super::KeyType;
use thiserror::Error;

/// A shard-key value that cannot be read as its column's type, or that no shard owns.
///
/// The data plane answers the statement with an ErrorResponse instead of guessing a
/// shard, so each variant carries the SQLSTATE PostgreSQL uses for the same problem,
/// and the messages follow PostgreSQL's wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShardingError {
    /// Text that is not a value of the key's type, e.g. `'abc'` for a bigint key.
    #[error("invalid input syntax for type {}: {text:?}", key_type.sql_name())]
    InvalidText { key_type: KeyType, text: String },
    /// An integer beyond the key type's range, e.g. `70000` for a smallint key.
    #[error("value {text:?} is out of range for type {}", key_type.sql_name())]
    OutOfRange { key_type: KeyType, text: String },
    /// A binary-format parameter of the wrong length, or text that is not UTF-8.
    #[error("incorrect binary data format for type {}", key_type.sql_name())]
    InvalidBinary { key_type: KeyType },
    /// A key given as something other than a constant of a usable type: an
    /// expression, a number for a text key, a cast to another type.
    #[error("the shard key of type {} is not a constant of that type: {expression}", key_type.sql_name())]
    NotAConstant {
        key_type: KeyType,
        /// The expression as SQL.
        expression: String,
    },
    /// A range or list mapping owns no such value (NULL included).
    #[error("no shard holds the key value {value}")]
    NoShardForKey {
        /// The value as SQL, e.g. `42`, `'fr'` or `NULL`.
        value: String,
    },
    /// A mapping names a shard the database does not have, e.g. after a shard was
    /// removed without updating the mapping.
    #[error("the key value {value} belongs to shard {shard}, but there are only {shards} shards")]
    ShardOutOfRange {
        value: String,
        shard: usize,
        shards: usize,
    },
    /// Placing a key among zero shards.
    #[error("the database has no shards")]
    NoShards,
    /// A range or list mapping whose values are not all of one comparable kind, or
    /// that overlap; config validation refuses these, so this means a caller built one
    /// by hand.
    #[error("invalid shard mapping: {0}")]
    InvalidMapping(String),
}

impl ShardingError {
    /// The SQLSTATE to report: 22P02 (invalid_text_representation), 22003
    /// (numeric_value_out_of_range), 22P03 (invalid_binary_representation), 0A000
    /// (feature_not_supported), 23514 (check_violation, as PostgreSQL reports a row
    /// no partition accepts) or XX000 (internal_error).
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ShardingError::InvalidText { .. } => "22P02",
            ShardingError::OutOfRange { .. } => "22003",
            ShardingError::InvalidBinary { .. } => "22P03",
            ShardingError::NotAConstant { .. } => "0A000",
            ShardingError::NoShardForKey { .. } => "23514",
            ShardingError::ShardOutOfRange { .. }
            | ShardingError::NoShards
            | ShardingError::InvalidMapping(_) => "XX000",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_postgresql() {
        let error = ShardingError::InvalidText {
            key_type: KeyType::Int8,
            text: "abc".into(),
        };
        assert_eq!(
            error.to_string(),
            "invalid input syntax for type bigint: \"abc\""
        );
        assert_eq!(error.sqlstate(), "22P02");
        let error = ShardingError::OutOfRange {
            key_type: KeyType::Int2,
            text: "70000".into(),
        };
        assert_eq!(
            error.to_string(),
            "value \"70000\" is out of range for type smallint"
        );
        let error = ShardingError::NoShardForKey {
            value: "'fr'".into(),
        };
        assert_eq!(error.to_string(), "no shard holds the key value 'fr'");
        assert_eq!(error.sqlstate(), "23514");
    }
}
