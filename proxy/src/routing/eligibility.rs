//! Which replicas may serve a read right now: reachable, not banned, not lagging, and —
//! for a client that has written — caught up with its write.

use std::time::{Duration, Instant};

use pgshard_config::LagLimit;
use pgshard_failover::ShardTopology;

/// What a read asks of a replica.
#[derive(Debug, Clone, Copy)]
pub struct ReadNeeds {
    /// The client's last committed write, when it must read it back (read-your-writes).
    pub written_at: Option<Instant>,
}

impl ReadNeeds {
    /// What a read asks of a replica: the client's last write (`written_at`) must be
    /// there when read-your-writes is on, unless the session (`SET pgshard.role`) or the
    /// statement (`/* pgshard: role=replica */`) asked for a replica regardless.
    pub fn for_read(
        read_your_writes: bool,
        written_at: Option<Instant>,
        session_role: Option<pgshard_router::RoleHint>,
        replica_hint: bool,
    ) -> ReadNeeds {
        let replica = pgshard_router::RoleHint::Replica;
        let own_writes = read_your_writes && !replica_hint && session_role != Some(replica);
        ReadNeeds {
            written_at: written_at.filter(|_| own_writes),
        }
    }
}

/// Whether node `i` may serve a read as a replica, given the monitor's view and the
/// limits.
pub fn replica_eligible(
    topology: &ShardTopology,
    i: usize,
    max_lag: LagLimit,
    needs: ReadNeeds,
) -> bool {
    if !topology.is_live_replica(i) {
        return false;
    }
    let status = &topology.nodes[i];
    let within_lag = match max_lag {
        LagLimit::Bytes(limit) => topology.lag_bytes(i).is_none_or(|lag| lag <= limit),
        LagLimit::Time(limit) => {
            let caught_up = topology.lag_bytes(i) == Some(0);
            caught_up || status.replay_delay.unwrap_or(Duration::ZERO) <= limit
        }
    };
    if !within_lag {
        return false;
    }
    match needs.written_at {
        None => true,
        Some(t) => topology
            .position_after(t)
            .is_some_and(|lsn| topology.has_replayed(i, lsn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgshard_failover::{Lsn, NodeRole};

    /// A primary (node 0) and two replicas (nodes 1 and 2), all at the same position.
    fn topology() -> ShardTopology {
        let mut t = ShardTopology::new("p:5432", &["r1:5432".into(), "r2:5432".into()]);
        t.nodes[0].reachable = true;
        t.nodes[0].role = Some(NodeRole::Primary);
        t.push_position(Instant::now() - Duration::from_secs(60), Lsn(10_000));
        for r in &mut t.nodes[1..] {
            r.reachable = true;
            r.role = Some(NodeRole::Replica);
            r.lsn = Some(Lsn(10_000));
        }
        t
    }

    const ANY: ReadNeeds = ReadNeeds { written_at: None };

    #[test]
    fn unreachable_unknown_or_promoted_replicas_are_skipped() {
        let mut t = topology();
        assert!(replica_eligible(&t, 1, LagLimit::Bytes(0), ANY));
        t.nodes[1].reachable = false;
        assert!(!replica_eligible(&t, 1, LagLimit::Bytes(0), ANY));
        t.nodes[2].role = Some(NodeRole::Primary);
        assert!(!replica_eligible(&t, 2, LagLimit::Bytes(0), ANY));
        assert!(!replica_eligible(&t, 3, LagLimit::Bytes(0), ANY));
    }

    #[test]
    fn lag_in_bytes_and_in_time() {
        let mut t = topology();
        t.nodes[1].lsn = Some(Lsn(9_000));
        assert!(replica_eligible(&t, 1, LagLimit::Bytes(1_000), ANY));
        assert!(!replica_eligible(&t, 1, LagLimit::Bytes(999), ANY));
        t.nodes[1].replay_delay = Some(Duration::from_secs(20));
        assert!(!replica_eligible(
            &t,
            1,
            LagLimit::Time(Duration::from_secs(10)),
            ANY
        ));
        assert!(replica_eligible(
            &t,
            1,
            LagLimit::Time(Duration::from_secs(30)),
            ANY
        ));
        // A replica that has replayed everything is never late, however old its last
        // replayed transaction is.
        t.nodes[2].replay_delay = Some(Duration::from_secs(3600));
        assert!(replica_eligible(
            &t,
            2,
            LagLimit::Time(Duration::from_secs(1)),
            ANY
        ));
    }

    #[test]
    fn a_replica_hint_or_role_skips_read_your_writes() {
        use pgshard_router::RoleHint;
        let wrote = Some(Instant::now());
        assert!(ReadNeeds::for_read(true, wrote, None, false)
            .written_at
            .is_some());
        assert!(ReadNeeds::for_read(true, wrote, None, true)
            .written_at
            .is_none());
        let replica = Some(RoleHint::Replica);
        assert!(ReadNeeds::for_read(true, wrote, replica, false)
            .written_at
            .is_none());
        assert!(ReadNeeds::for_read(false, wrote, None, false)
            .written_at
            .is_none());
    }

    #[test]
    fn read_your_writes_waits_for_a_position_checked_after_the_write() {
        let mut t = topology();
        let written_at = Instant::now();
        let needs = ReadNeeds {
            written_at: Some(written_at),
        };
        // No check of the primary since the write: the replica cannot be shown current.
        assert!(!replica_eligible(&t, 1, LagLimit::Bytes(u64::MAX), needs));
        t.push_position(written_at + Duration::from_millis(5), Lsn(10_500));
        assert!(!replica_eligible(&t, 1, LagLimit::Bytes(u64::MAX), needs));
        t.nodes[1].lsn = Some(Lsn(10_500));
        assert!(replica_eligible(&t, 1, LagLimit::Bytes(u64::MAX), needs));
    }
}
