//! The `[databases.failover]` table: whether and how pgshard promotes a replica when a
//! shard's primary dies.

use crate::lag::LagLimit;
use serde::Deserialize;
use std::time::Duration;

/// Automatic failover of one database's shards. Off by default: promoting and repointing
/// need superuser credentials, which only the operator can grant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailoverConfig {
    /// Promote a replica when the primary is dead; default false.
    pub enabled: bool,
    /// Control-connection login (a superuser: `pg_promote`, `ALTER SYSTEM`); also used for
    /// health checks when set. Default: the first `[[users]]` entry's server credentials.
    pub user: Option<String>,
    pub password: Option<String>,
    /// How the other replicas log in to stream from a promoted primary.
    pub replication_user: String,
    pub replication_password: Option<String>,
    /// Failed health checks in a row before the primary counts as unreachable; default 3.
    pub failure_threshold: u32,
    /// How long one health check may take; default 2s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub check_timeout: Duration,
    /// Without synchronous replication, a candidate further behind the last primary
    /// position seen is not promoted (its missing writes would be lost); default 16MB.
    #[serde(deserialize_with = "crate::lag::deserialize")]
    pub max_failover_lag: LagLimit,
    /// How long new writes wait for a primary during a failover before failing;
    /// default 30s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub hold_timeout: Duration,
    /// If a promoted primary still waits for a synchronous standby after this long,
    /// synchronous replication is turned off on it so writes do not hang forever; 0 keeps
    /// waiting (writes block until a standby comes). Default 10s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub synchronous_fallback: Duration,
    /// Run through `sh -c` when a node claims to be a primary on an older timeline than
    /// the current primary (a fenced old primary), to make it a standby of the current
    /// primary; placeholders `%h`/`%p` (the fenced node), `%H`/`%P` (the primary), `%d`
    /// (the database). Default: none, the node stays fenced until rejoined by hand.
    pub rejoin_command: Option<String>,
    /// How long `rejoin_command` may run before it is killed; default 5min.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub rejoin_timeout: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            enabled: false,
            user: None,
            password: None,
            replication_user: "replicator".to_string(),
            replication_password: None,
            failure_threshold: 3,
            check_timeout: Duration::from_secs(2),
            max_failover_lag: LagLimit::Bytes(16 * 1024 * 1024),
            hold_timeout: Duration::from_secs(30),
            synchronous_fallback: Duration::from_secs(10),
            rejoin_command: None,
            rejoin_timeout: Duration::from_secs(300),
        }
    }
}
