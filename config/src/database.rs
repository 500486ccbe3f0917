//! `[[databases]]` entries: the logical databases clients see and the shards behind them.

use crate::address::NodeAddress;
use crate::failover::FailoverConfig;
use crate::replica::ReplicaConfig;
use crate::routing::RoutingConfig;
use crate::shard_mapping::{ShardList, ShardRange};
use crate::sharded_table::ShardedTable;
use crate::sharding_function::ShardingFunctionKind;
use crate::two_phase::TwoPhaseCommit;
use serde::Deserialize;
use std::time::Duration;

/// A database clients connect to by name, spread over one or more shards.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The name clients connect to.
    pub name: String,
    /// The database name on the servers; default: `name`.
    pub server_database: Option<String>,
    /// At least one; with one shard the proxy only pools and splits reads.
    #[serde(default)]
    pub shards: Vec<ShardConfig>,
    /// `[databases.routing]`: how reads are spread; all defaults when left out.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// `[databases.failover]`: promoting a replica when a primary dies; off when left out.
    #[serde(default)]
    pub failover: FailoverConfig,
    /// How sharded tables' rows are spread over the shards; default `hash`.
    #[serde(default)]
    pub sharding_function: ShardingFunctionKind,
    /// Points per shard on the consistent-hashing ring (`sharding_function = "ring"`);
    /// more points spread rows more evenly at the cost of memory. Default 256.
    #[serde(default = "default_ring_virtual_nodes")]
    pub ring_virtual_nodes: u32,
    /// Tables spread over the shards, each by one key column.
    #[serde(default)]
    pub sharded_tables: Vec<ShardedTable>,
    /// Tables present in full on every shard (small tables that sharded tables join
    /// with); `name` or `schema.name`.
    #[serde(default)]
    pub replicated_tables: Vec<String>,
    /// Key ranges per shard, for `sharding_function = "range"`.
    #[serde(default)]
    pub shard_ranges: Vec<ShardRange>,
    /// Key values per shard, for `sharding_function = "list"`.
    #[serde(default)]
    pub shard_lists: Vec<ShardList>,
    /// Whether a transaction that wrote on several shards commits with two-phase
    /// commit; default `auto`.
    #[serde(default)]
    pub two_phase_commit: TwoPhaseCommit,
    /// How old a prepared transaction of pgshard's with no commit decision must be
    /// before recovery rolls it back: longer than any commit in progress takes.
    /// Default 60s.
    #[serde(
        default = "default_two_phase_commit_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub two_phase_commit_timeout: Duration,
    /// How often every shard is searched for prepared transactions left by an
    /// interrupted commit; default 10s.
    #[serde(
        default = "default_two_phase_recovery_interval",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub two_phase_recovery_interval: Duration,
}

impl DatabaseConfig {
    /// `ring_virtual_nodes` when the key is left out.
    pub const DEFAULT_RING_VIRTUAL_NODES: u32 = 256;
    /// `two_phase_commit_timeout` when the key is left out.
    pub const DEFAULT_TWO_PHASE_COMMIT_TIMEOUT: Duration = Duration::from_secs(60);
    /// `two_phase_recovery_interval` when the key is left out.
    pub const DEFAULT_TWO_PHASE_RECOVERY_INTERVAL: Duration = Duration::from_secs(10);

    /// The database name to use on the servers.
    pub fn server_database(&self) -> &str {
        self.server_database.as_deref().unwrap_or(&self.name)
    }

    /// The database name to use on shard `shard`'s servers: its own `server_database`,
    /// else the database's.
    pub fn shard_database(&self, shard: usize) -> &str {
        self.shards
            .get(shard)
            .and_then(|s| s.server_database.as_deref())
            .unwrap_or_else(|| self.server_database())
    }
}

fn default_ring_virtual_nodes() -> u32 {
    DatabaseConfig::DEFAULT_RING_VIRTUAL_NODES
}

fn default_two_phase_commit_timeout() -> Duration {
    DatabaseConfig::DEFAULT_TWO_PHASE_COMMIT_TIMEOUT
}

fn default_two_phase_recovery_interval() -> Duration {
    DatabaseConfig::DEFAULT_TWO_PHASE_RECOVERY_INTERVAL
}

/// One shard: a primary for writes and optional streaming replicas that can
/// serve reads and be promoted on failover.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub primary: NodeAddress,
    #[serde(default)]
    pub replicas: Vec<ReplicaConfig>,
    /// The database holding this shard on its servers; default: the database's
    /// `server_database`. Lets several shards live on one server (small setups, tests,
    /// the step before moving a shard to its own machine).
    #[serde(default)]
    pub server_database: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_database_defaults_to_name() {
        let mut database = DatabaseConfig {
            name: "app".into(),
            server_database: None,
            shards: Vec::new(),
            routing: RoutingConfig::default(),
            failover: FailoverConfig::default(),
            sharding_function: ShardingFunctionKind::default(),
            ring_virtual_nodes: DatabaseConfig::DEFAULT_RING_VIRTUAL_NODES,
            sharded_tables: Vec::new(),
            replicated_tables: Vec::new(),
            shard_ranges: Vec::new(),
            shard_lists: Vec::new(),
            two_phase_commit: TwoPhaseCommit::default(),
            two_phase_commit_timeout: DatabaseConfig::DEFAULT_TWO_PHASE_COMMIT_TIMEOUT,
            two_phase_recovery_interval: DatabaseConfig::DEFAULT_TWO_PHASE_RECOVERY_INTERVAL,
        };
        assert_eq!(database.server_database(), "app");
        database.server_database = Some("app_prod".into());
        assert_eq!(database.server_database(), "app_prod");
    }
}
