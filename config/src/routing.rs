//! The `[databases.routing]` table: how one database's reads are spread over its
//! replicas and when the primary serves them instead.

use crate::lag::LagLimit;
use serde::Deserialize;
use std::time::Duration;

/// Read/write splitting settings of one database; every field has a default, so the
/// table may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// How reads pick among a shard's usable replicas; default `round_robin`.
    pub load_balance: LoadBalance,
    /// When the primary serves reads; default `fallback`.
    pub primary_reads: PrimaryReads,
    /// Replicas further behind get no reads; default 16MB of WAL.
    #[serde(deserialize_with = "crate::lag::deserialize")]
    pub max_replica_lag: LagLimit,
    /// After a client writes, its reads go to the primary until the replicas have
    /// replayed that write, so it always sees its own changes; default true.
    pub read_your_writes: bool,
    /// How long a replica that failed a connection or a read gets no reads; default 30s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub replica_ban_time: Duration,
    /// How often replica lag and health are polled and bans re-checked; default 1s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub health_check_interval: Duration,
    /// Functions that write, besides the built-in ones (`nextval`, advisory locks, …):
    /// a statement calling one goes to the primary. Case-insensitive; a
    /// schema-qualified name matches by its last part.
    pub write_functions: Vec<String>,
    /// Query strings whose classification is remembered; 0 turns the cache off.
    /// Default 10000.
    pub parse_cache_size: usize,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            load_balance: LoadBalance::default(),
            primary_reads: PrimaryReads::default(),
            max_replica_lag: LagLimit::default(),
            read_your_writes: true,
            replica_ban_time: Duration::from_secs(30),
            health_check_interval: Duration::from_secs(1),
            write_functions: Vec::new(),
            parse_cache_size: 10_000,
        }
    }
}

/// How a read picks one of a shard's usable replicas, each in proportion to its
/// `weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalance {
    /// In turn: even load for uniform queries, predictable in tests.
    #[default]
    RoundRobin,
    /// At random: no shared counter, no lockstep between proxies.
    Random,
    /// The replica with the fewest sessions per unit of weight: adapts to slow
    /// queries and unequal servers.
    LeastConnections,
}

/// Whether the primary serves reads too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryReads {
    /// Only when no replica is usable (none configured, all down, banned or lagging).
    #[default]
    Fallback,
    /// Never, apart from reads that must see the client's own writes: with no usable
    /// replica a read fails, which keeps read load off the primary.
    Never,
    /// Always: the primary is one more read candidate, next to the replicas.
    Always,
}
