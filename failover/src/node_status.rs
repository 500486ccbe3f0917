//! What the last health check saw of one node.

use std::time::{Duration, Instant};

use crate::lsn::Lsn;
use crate::sync_standbys::{Standby, SyncRule};

/// The role a node reports (`pg_is_in_recovery()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Primary,
    Replica,
}

/// One node as the monitor last saw it. `reachable` is false after a failed check; the
/// other fields then keep what the last successful check saw.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The address the proxy reaches the node at, from the configuration.
    pub addr: String,
    pub reachable: bool,
    /// Failed checks in a row.
    pub failures: u32,
    pub role: Option<NodeRole>,
    /// Primary: the timeline it writes; replica: the timeline it receives.
    pub timeline: Option<u32>,
    /// Primary: `pg_current_wal_lsn()`; replica: `pg_last_wal_replay_lsn()`.
    pub lsn: Option<Lsn>,
    /// Replica: `pg_last_wal_receive_lsn()`.
    pub received_lsn: Option<Lsn>,
    /// Replica: time since the last replayed transaction committed on the primary; only
    /// meaningful while the replica is behind.
    pub replay_delay: Option<Duration>,
    /// Replica: its WAL receiver is streaming from a primary right now. A replica that
    /// still streams is a witness that its primary is alive.
    pub streaming: bool,
    /// How its peers reach it (`inet_server_addr()`/`inet_server_port()`), for repointing
    /// replicas to it after a promotion.
    pub peer_addr: Option<String>,
    /// Replica: the `application_name` it streams with (lower-cased), as its primary's
    /// `pg_stat_replication` shows it.
    pub name: Option<String>,
    /// Primary: its standbys, and whether commits wait for each (`sync_state` sync or
    /// quorum).
    pub standbys: Vec<Standby>,
    /// Primary: its `synchronous_standby_names`, when set and understood.
    pub sync_rule: Option<SyncRule>,
    /// Primary: `synchronous_standby_names` is set.
    pub synchronous: bool,
    /// A primary on an older timeline than the shard's primary: it gets no traffic and is
    /// never promoted back by itself.
    pub fenced: bool,
    /// When the last successful check was sent.
    pub checked_at: Option<Instant>,
}

impl NodeStatus {
    /// A node not checked yet: unreachable until the first check succeeds.
    pub fn unknown(addr: &str) -> NodeStatus {
        NodeStatus {
            addr: addr.to_string(),
            reachable: false,
            failures: 0,
            role: None,
            timeline: None,
            lsn: None,
            received_lsn: None,
            replay_delay: None,
            streaming: false,
            peer_addr: None,
            name: None,
            standbys: Vec::new(),
            sync_rule: None,
            synchronous: false,
            fenced: false,
            checked_at: None,
        }
    }

    /// The furthest WAL position it holds (received or replayed).
    pub fn furthest_lsn(&self) -> Option<Lsn> {
        match (self.lsn, self.received_lsn) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}
