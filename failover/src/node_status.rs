//! What the last health check saw of one node.

use std::time::{Duration, Instant};

use crate::lsn::Lsn;

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
    pub addr: String,
    pub reachable: bool,
    /// Failed checks in a row.
    pub failures: u32,
    pub role: Option<NodeRole>,
    /// Primary: `pg_current_wal_lsn()`; replica: `pg_last_wal_replay_lsn()`.
    pub lsn: Option<Lsn>,
    /// Replica: `pg_last_wal_receive_lsn()`.
    pub received_lsn: Option<Lsn>,
    /// Replica: time since the last replayed transaction committed on the primary; only
    /// meaningful while the replica is behind.
    pub replay_delay: Option<Duration>,
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
            lsn: None,
            received_lsn: None,
            replay_delay: None,
            checked_at: None,
        }
    }
}
