//! The published view of one shard's nodes, which the data plane reads on every routing
//! decision.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::lsn::Lsn;
use crate::node_status::NodeStatus;

/// Primary positions kept for read-your-writes; at the default interval this covers the
/// last several seconds, and a client whose write is older than all of them is served by
/// the oldest, which was taken after its write anyway.
pub const POSITIONS_KEPT: usize = 32;

/// One shard as the monitor last saw it: its primary, its replicas (in configuration
/// order) and the primary's recent WAL positions.
#[derive(Debug, Clone)]
pub struct ShardTopology {
    pub primary: NodeStatus,
    pub replicas: Vec<NodeStatus>,
    /// `(when the check was sent, pg_current_wal_lsn())`, oldest first.
    pub primary_positions: Vec<(Instant, Lsn)>,
}

/// A shard's topology, swapped whole by the monitor and read lock-free by sessions.
pub type SharedTopology = Arc<ArcSwap<ShardTopology>>;

impl ShardTopology {
    pub fn new(primary: &str, replicas: &[String]) -> ShardTopology {
        ShardTopology {
            primary: NodeStatus::unknown(primary),
            replicas: replicas.iter().map(|r| NodeStatus::unknown(r)).collect(),
            primary_positions: Vec::new(),
        }
    }

    /// Replay lag of replica `i` behind the primary's last known position, in bytes;
    /// `None` while either position is unknown.
    pub fn lag_bytes(&self, i: usize) -> Option<u64> {
        let replica = self.replicas.get(i)?.lsn?;
        Some(self.primary.lsn?.bytes_after(replica))
    }

    /// The first primary position checked after `t`: every transaction that committed
    /// before `t` is at or below it. `None` until such a check has happened.
    pub fn position_after(&self, t: Instant) -> Option<Lsn> {
        self.primary_positions
            .iter()
            .find(|(sent_at, _)| *sent_at >= t)
            .map(|&(_, lsn)| lsn)
    }

    /// Whether replica `i` has replayed the WAL up to `lsn`.
    pub fn has_replayed(&self, i: usize, lsn: Lsn) -> bool {
        self.replicas
            .get(i)
            .and_then(|r| r.lsn)
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
    fn lag_and_replay_checks() {
        let mut t = ShardTopology::new("p:5432", &["r:5432".into()]);
        assert_eq!(t.lag_bytes(0), None);
        t.primary.lsn = Some(Lsn(1000));
        t.replicas[0].lsn = Some(Lsn(400));
        assert_eq!(t.lag_bytes(0), Some(600));
        assert!(t.has_replayed(0, Lsn(400)));
        assert!(!t.has_replayed(0, Lsn(401)));
        assert!(!t.has_replayed(1, Lsn(0)));
    }
}
