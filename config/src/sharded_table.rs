//! `[[databases.sharded_tables]]`: which tables are spread over the shards and by
//! which column.

use serde::Deserialize;

/// A table whose rows are spread over the shards by the value of one column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardedTable {
    /// `name` or `schema.name`, matched like unquoted SQL identifiers: case-insensitively.
    pub table: String,
    /// The shard-key column.
    pub column: String,
    /// The column's type; default `bigint`.
    #[serde(rename = "type", default)]
    pub key_type: ShardKeyType,
}

/// The SQL type of a shard-key column; it decides how key values in queries are read
/// and hashed, so it must match the column's type in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardKeyType {
    /// `smallint` (`int2`).
    Smallint,
    /// `integer` (`int4`).
    Int,
    /// `bigint` (`int8`): the usual type of generated ids.
    #[default]
    Bigint,
    /// `text` or `varchar`.
    Text,
    /// `uuid`.
    Uuid,
}

impl ShardKeyType {
    /// The name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            ShardKeyType::Smallint => "smallint",
            ShardKeyType::Int => "int",
            ShardKeyType::Bigint => "bigint",
            ShardKeyType::Text => "text",
            ShardKeyType::Uuid => "uuid",
        }
    }

    /// True for the integer types, whose range and list values are TOML integers.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            ShardKeyType::Smallint | ShardKeyType::Int | ShardKeyType::Bigint
        )
    }
}
