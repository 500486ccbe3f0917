//! Everything the data plane needs to route one configured database's statements.

use std::sync::Arc;
use std::time::Duration;

use pgshard_config::DatabaseConfig;
use pgshard_failover::{
    FailoverSettings, MonitorSettings, ProbeCredentials, PromotionRules, RejoinCommand,
    ReplicationLogin, ShardControl, ShardMonitor,
};
use pgshard_router::plan::Planner;
use pgshard_router::Classifier;
use tokio_util::sync::DropGuard;

use super::shard_nodes::ShardNodes;
use crate::two_phase::recovery::{Login, Recovery};
use crate::two_phase::TwoPhase;

/// A database clients connect to: its configuration, its shards' nodes (each watched by
/// a [`ShardMonitor`]) and the statement classifier with its parse cache.
pub struct DatabaseRoute {
    pub config: DatabaseConfig,
    pub shards: Vec<Arc<ShardNodes>>,
    /// Each shard's monitor, for the admin console's switchover and forced promotion.
    pub controls: Vec<ShardControl>,
    pub classifier: Classifier,
    /// Plans statements over the shards; only for a database of several shards.
    pub planner: Option<Arc<Planner>>,
    /// Whether the database's collation orders text byte by byte ("C", "POSIX",
    /// "C.UTF-8"), as the proxy compares text when it merges sorted shard results;
    /// learnt from the first server a sharded session meets.
    pub bytewise_text: std::sync::OnceLock<bool>,
    /// Two-phase commit settings and what is known of the shards for it.
    pub two_phase: Arc<TwoPhase>,
    /// `DISABLE` and `PAUSE` from the admin console.
    pub admin: super::admin_state::AdminState,
    /// Its traffic since start (`SHOW STATS`).
    pub stats: crate::metrics::stats::DatabaseStats,
    /// Stops the shard monitors when the route goes away.
    _monitors: DropGuard,
}

impl DatabaseRoute {
    /// Starts a monitor per shard on `credentials.tasks`, stopped when the route is
    /// dropped, and for a sharded database the resolver of interrupted two-phase
    /// commits (which may finish them as any of `logins`); must run inside the runtime.
    pub fn start(
        config: DatabaseConfig,
        credentials: ProbeCredentials,
        planner: Option<Arc<Planner>>,
        logins: Vec<Login>,
    ) -> DatabaseRoute {
        let two_phase = Arc::new(TwoPhase::new(&config, &credentials));
        let routing = config.routing.clone();
        let failover = &config.failover;
        let settings = MonitorSettings {
            interval: routing.health_check_interval,
            timeout: failover.check_timeout,
        };
        let mut controls = Vec::new();
        let shards: Vec<Arc<ShardNodes>> = config
            .shards
            .iter()
            .enumerate()
            .map(|(index, shard)| {
                // Each shard's nodes are checked in the shard's own database.
                let credentials = ProbeCredentials {
                    database: config.shard_database(index).to_string(),
                    ..credentials.clone()
                };
                let replicas: Vec<String> = shard
                    .replicas
                    .iter()
                    .map(|r| r.address.to_string())
                    .collect();
                let rules = PromotionRules {
                    priority: std::iter::once(0)
                        .chain(shard.replicas.iter().map(|r| r.priority))
                        .collect(),
                    no_promote: std::iter::once(false)
                        .chain(shard.replicas.iter().map(|r| r.no_promote))
                        .collect(),
                    max_lag: Some(failover.max_failover_lag),
                };
                let failover_settings = FailoverSettings {
                    enabled: failover.enabled,
                    failure_threshold: failover.failure_threshold,
                    rules,
                    credentials: credentials.clone(),
                    replication: ReplicationLogin {
                        user: failover.replication_user.clone(),
                        password: failover.replication_password.clone(),
                    },
                    timeout: failover.check_timeout.max(Duration::from_secs(5)),
                    synchronous_fallback: failover.synchronous_fallback,
                    hold_timeout: failover.hold_timeout,
                    rejoin: failover
                        .rejoin_command
                        .clone()
                        .map(|template| RejoinCommand {
                            template,
                            timeout: failover.rejoin_timeout,
                            database: config.name.clone(),
                        }),
                };
                let (publisher, control) = ShardMonitor::spawn(
                    &shard.primary.to_string(),
                    &replicas,
                    credentials.clone(),
                    settings,
                    failover_settings,
                );
                controls.push(control);
                let nodes = std::iter::once((shard.primary.to_string(), 1))
                    .chain(
                        shard
                            .replicas
                            .iter()
                            .map(|r| (r.address.to_string(), r.weight)),
                    )
                    .collect();
                Arc::new(ShardNodes::new(
                    nodes,
                    publisher.topology.clone(),
                    publisher.primary_changes(),
                    routing.clone(),
                ))
            })
            .collect();
        if planner.is_some() {
            Recovery {
                database: config.name.clone(),
                shards: shards.clone(),
                two_phase: two_phase.clone(),
                logins,
            }
            .spawn(&credentials.tasks);
        }
        let monitors = credentials.tasks.stop().clone().drop_guard();
        let classifier = Classifier::new(&routing.write_functions, routing.parse_cache_size);
        DatabaseRoute {
            config,
            shards,
            controls,
            classifier,
            planner,
            bytewise_text: std::sync::OnceLock::new(),
            two_phase,
            admin: Default::default(),
            stats: Default::default(),
            _monitors: monitors,
        }
    }
}

impl DatabaseRoute {
    /// Whether `addr` and `server_database` are a node of this database's and its
    /// database there (a pool or server connection of this database).
    pub fn serves(&self, addr: &str, server_database: &str) -> bool {
        self.shards.iter().enumerate().any(|(shard, nodes)| {
            self.config.shard_database(shard) == server_database
                && (0..nodes.nodes.len()).any(|n| nodes.slot(super::NodeId(n)).addr == addr)
        })
    }
}
