//! The published view of one shard's nodes, which the data plane reads on every routing
//! decision.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::lsn::Lsn;
use crate::node_status::{NodeRole, NodeStatus};

/// Primary positions kept for read-your-writes; at the default interval this covers the
/// last several seconds, and a client whose write is older than all of them is served by
/// the oldest, which was taken after its write anyway.
pub const POSITIONS_KEPT: usize = 32;

/// Where the shard stands, as far as writes are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardPhase {
    /// The primary answers.
    Healthy,
    /// The primary has failed checks; not yet declared dead.
    PrimaryUnreachable,
    /// The primary failed enough checks, but a replica still streams from it: this proxy
    /// is the one cut off, so nothing is promoted.
    Partitioned,
    /// A replica is being promoted; writes wait.
    FailingOver,
    /// A switchover an administrator asked for: the primary still answers, but new writes
    /// wait while it is made read-only and a chosen replica catches up and is promoted.
    SwitchingOver,
    /// The primary is dead and no replica may be promoted (or failover is off); the
    /// reason is given.
    NoPrimary(String),
}

/// One shard as the monitor last saw it: every node in configuration order (the
/// configured primary first), which of them takes writes, and the primary's recent WAL
/// positions.
#[derive(Debug, Clone)]
pub struct ShardTopology {
    pub nodes: Vec<NodeStatus>,
    /// The node writes go to; `None` while no primary is known.
    pub primary: Option<usize>,
    pub phase: ShardPhase,
    /// `(when the check was sent, pg_current_wal_lsn())` of the primary, oldest first.
    pub primary_positions: Vec<(Instant, Lsn)>,
}

/// A shard's topology, swapped whole by the monitor and read lock-free by sessions.
pub type SharedTopology = Arc<ArcSwap<ShardTopology>>;

/// Publishes topologies: swaps them in, and wakes whoever waits for the primary to
/// change (sessions on the old primary must be told their transaction is lost).
#[derive(Clone)]
pub struct TopologyPublisher {
    pub topology: SharedTopology,
    primary: Arc<tokio::sync::watch::Sender<Option<usize>>>,
}

impl TopologyPublisher {
    pub fn new(initial: ShardTopology) -> TopologyPublisher {
        let (primary, _) = tokio::sync::watch::channel(initial.primary);
        TopologyPublisher {
            topology: Arc::new(ArcSwap::from_pointee(initial)),
            primary: Arc::new(primary),
        }
    }

    pub fn publish(&self, next: ShardTopology) {
        let primary = next.primary;
        self.topology.store(Arc::new(next));
        self.primary.send_if_modified(|p| {
            let changed = *p != primary;
            *p = primary;
            changed
        });
    }

    /// Changes of the node that takes writes.
    pub fn primary_changes(&self) -> tokio::sync::watch::Receiver<Option<usize>> {
        self.primary.subscribe()
    }
}

impl ShardTopology {
    /// The configured topology, trusted until the first checks say otherwise.
    pub fn new(primary: &str, replicas: &[String]) -> ShardTopology {
        let nodes = std::iter::once(primary)
            .chain(replicas.iter().map(String::as_str))
            .map(NodeStatus::unknown)
            .collect();
        ShardTopology {
            nodes,
            primary: Some(0),
            phase: ShardPhase::Healthy,
            primary_positions: Vec::new(),
        }
    }

    /// The node new writes may go to: the primary, except while a switchover holds them.
    pub fn writable_primary(&self) -> Option<usize> {
        self.primary
            .filter(|_| self.phase != ShardPhase::SwitchingOver)
    }

    /// The node of address `addr`, as the configuration spells it.
    pub fn node_at(&self, addr: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.addr.eq_ignore_ascii_case(addr))
    }

    /// The last WAL position the primary reported.
    pub fn primary_lsn(&self) -> Option<Lsn> {
        self.primary_positions.last().map(|&(_, lsn)| lsn)
    }

    /// Whether node `i` is a replica that may serve reads at all: reachable, in
    /// recovery, not the primary, not fenced.
    pub fn is_live_replica(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| {
            n.reachable && n.role == Some(NodeRole::Replica) && !n.fenced && n.lsn.is_some()
        }) && self.primary != Some(i)
    }

    /// Replay lag of node `i` behind the primary's last known position, in bytes; `None`
    /// while either position is unknown.
    pub fn lag_bytes(&self, i: usize) -> Option<u64> {
        let replayed = self.nodes.get(i)?.lsn?;
        Some(self.primary_lsn()?.bytes_after(replayed))
    }

    /// The first primary position checked after `t`: every transaction that committed
    /// before `t` is at or below it. `None` until such a check has happened.
    pub fn position_after(&self, t: Instant) -> Option<Lsn> {
        self.primary_positions
            .iter()
            .find(|(sent_at, _)| *sent_at >= t)
            .map(|&(_, lsn)| lsn)
    }

    /// Whether node `i` has replayed the WAL up to `lsn`.
    pub fn has_replayed(&self, i: usize, lsn: Lsn) -> bool {
        self.nodes
            .get(i)
            .and_then(|n| n.lsn)
            .is_some_and(|replayed| replayed >= lsn)
    }

    /// Remembers a primary position, dropping the oldest beyond [`POSITIONS_KEPT`].
    pub fn push_position(&mut self, sent_at: Instant, lsn: Lsn) {
        self.primary_positions.push((sent_at, lsn));
        let excess = self.primary_positions.len().saturating_sub(POSITIONS_KEPT);
        self.primary_positions.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn position_after_a_write_is_the_first_check_sent_after_it() {
        let mut t = ShardTopology::new("p:5432", &["r:5432".into()]);
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        t.push_position(at(0), Lsn(100));
        t.push_position(at(10), Lsn(200));
        t.push_position(at(20), Lsn(300));
        assert_eq!(t.position_after(at(5)), Some(Lsn(200)));
        assert_eq!(t.position_after(at(10)), Some(Lsn(200)));
        assert_eq!(t.position_after(at(21)), None);
        assert_eq!(t.primary_lsn(), Some(Lsn(300)));
    }

    #[test]
    fn keeps_a_bounded_history() {
        let mut t = ShardTopology::new("p:5432", &[]);
        let start = Instant::now();
        for i in 0..(POSITIONS_KEPT as u64 + 5) {
            t.push_position(start + Duration::from_millis(i), Lsn(i));
        }
        assert_eq!(t.primary_positions.len(), POSITIONS_KEPT);
        assert_eq!(t.primary_positions[0].1, Lsn(5));
    }

    #[test]
    fn lag_replay_and_liveness() {
        let mut t = ShardTopology::new("p:5432", &["r:5432".into()]);
        assert_eq!(t.lag_bytes(1), None);
        t.push_position(Instant::now(), Lsn(1000));
        t.nodes[1].lsn = Some(Lsn(400));
        assert_eq!(t.lag_bytes(1), Some(600));
        assert!(t.has_replayed(1, Lsn(400)));
        assert!(!t.has_replayed(1, Lsn(401)));
        assert!(!t.is_live_replica(1));
        t.nodes[1].reachable = true;
        t.nodes[1].role = Some(NodeRole::Replica);
        assert!(t.is_live_replica(1));
        t.nodes[1].fenced = true;
        assert!(!t.is_live_replica(1));
        assert!(!t.is_live_replica(0));
    }
}
