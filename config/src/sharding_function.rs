//! `sharding_function`: how a database's rows are spread over its shards.

use serde::Deserialize;

/// Which function maps a row's shard-key value to a shard.
///
/// `hash` needs no upkeep and matches PostgreSQL's own hash partitioning, so a shard
/// can be checked, split or merged with plain PostgreSQL tools; `ring` moves fewer
/// rows when shards are added; `range` and `list` let the operator decide where each
/// value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardingFunctionKind {
    /// The shard whose index is the remainder PostgreSQL's `PARTITION BY HASH` would
    /// compute with `MODULUS` = the number of shards.
    #[default]
    Hash,
    /// Consistent hashing with `ring_virtual_nodes` points per shard: adding a shard to
    /// N moves about 1/(N+1) of the rows instead of most of them.
    Ring,
    /// `[[databases.shard_ranges]]`: value ranges, each owned by one shard.
    Range,
    /// `[[databases.shard_lists]]`: explicit values, each owned by one shard.
    List,
}

impl ShardingFunctionKind {
    /// The name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            ShardingFunctionKind::Hash => "hash",
            ShardingFunctionKind::Ring => "ring",
            ShardingFunctionKind::Range => "range",
            ShardingFunctionKind::List => "list",
        }
    }
}
