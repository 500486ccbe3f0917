//! Everything the data plane needs to route one configured database's statements.

use std::sync::Arc;
use std::time::Duration;

use pgshard_config::DatabaseConfig;
use pgshard_failover::{MonitorSettings, ProbeCredentials, ShardMonitor};
use pgshard_router::Classifier;

use super::shard_nodes::ShardNodes;

/// A database clients connect to: its configuration, its shards' nodes (each watched by
/// a [`ShardMonitor`]) and the statement classifier with its parse cache.
pub struct DatabaseRoute {
    pub config: DatabaseConfig,
    pub shards: Vec<Arc<ShardNodes>>,
    pub classifier: Classifier,
}

impl DatabaseRoute {
    /// Starts a monitor per shard; must run inside the runtime.
    pub fn start(config: DatabaseConfig, credentials: ProbeCredentials) -> DatabaseRoute {
        let routing = config.routing.clone();
        let settings = MonitorSettings {
            interval: routing.health_check_interval,
            timeout: routing.health_check_interval.max(Duration::from_secs(1)),
        };
        let shards = config
            .shards
            .iter()
            .map(|shard| {
                let replicas: Vec<String> = shard
                    .replicas
                    .iter()
                    .map(|r| r.address.to_string())
                    .collect();
                let (topology, _task) = ShardMonitor::spawn(
                    &shard.primary.to_string(),
                    &replicas,
                    credentials.clone(),
                    settings,
                );
                Arc::new(ShardNodes::new(
                    shard.primary.to_string(),
                    shard
                        .replicas
                        .iter()
                        .map(|r| (r.address.to_string(), r.weight))
                        .collect(),
                    topology,
                    routing.clone(),
                ))
            })
            .collect();
        let classifier = Classifier::new(&routing.write_functions, routing.parse_cache_size);
        DatabaseRoute {
            config,
            shards,
            classifier,
        }
    }
}
