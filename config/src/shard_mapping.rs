//! `[[databases.shard_ranges]]` and `[[databases.shard_lists]]`: the operator's own
//! placement of key values, for `sharding_function = "range"` and `"list"`.

use crate::shard_value::ShardValue;
use serde::Deserialize;

/// Key values from `from` (included) up to `to` (excluded) belong to `shard`.
///
/// A missing bound is unbounded on that side. Ranges of one database must not
/// overlap; a value outside all of them belongs to no shard, and statements with it
/// are refused rather than sent to a guessed shard.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRange {
    /// Index into the database's `shards`, from 0.
    pub shard: usize,
    pub from: Option<ShardValue>,
    pub to: Option<ShardValue>,
}

/// The listed key values belong to `shard`.
///
/// A value may be listed only once per database; an unlisted value belongs to no
/// shard, and statements with it are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardList {
    /// Index into the database's `shards`, from 0.
    pub shard: usize,
    pub values: Vec<ShardValue>,
}
