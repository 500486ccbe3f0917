//! `[[databases]]` entries: the logical databases clients see and the shards behind them.

use crate::address::NodeAddress;
use crate::failover::FailoverConfig;
use crate::replica::ReplicaConfig;
use crate::routing::RoutingConfig;
use serde::Deserialize;

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
}

impl DatabaseConfig {
    /// The database name to use on the servers.
    pub fn server_database(&self) -> &str {
        self.server_database.as_deref().unwrap_or(&self.name)
    }
}

/// One shard: a primary for writes and optional streaming replicas that can
/// serve reads and be promoted on failover.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub primary: NodeAddress,
    #[serde(default)]
    pub replicas: Vec<ReplicaConfig>,
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
        };
        assert_eq!(database.server_database(), "app");
        database.server_database = Some("app_prod".into());
        assert_eq!(database.server_database(), "app_prod");
    }
}
