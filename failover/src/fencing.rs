//! Which node takes writes: the primary on the newest timeline. Any other node that says
//! it is a primary (an old primary that came back) is fenced.

use crate::node_status::NodeRole;
use crate::topology::ShardTopology;

/// A change of the node that takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryChange {
    pub from: Option<usize>,
    pub to: usize,
}

/// Re-decides the primary from what the nodes report, fencing primaries on older
/// timelines. While no reachable node claims to be a primary (fenced nodes claim it only
/// from a newer timeline) the current choice stays, so its failures keep counting
/// towards failover.
pub fn resolve_primary(t: &mut ShardTopology) -> Option<PrimaryChange> {
    let current = t.primary.and_then(|p| t.nodes[p].timeline).unwrap_or(0);
    for node in &mut t.nodes {
        // A fenced node that rejoined as a standby (pg_rewind, then recovery) is usable
        // again once it receives the current primary's timeline: a standby still on the
        // old one may hold writes the primary never had.
        let follows = node.timeline.is_some_and(|tl| tl >= current);
        if node.reachable && node.role == Some(NodeRole::Replica) && follows {
            node.fenced = false;
        }
    }
    // A fenced node claims the role again only from a newer timeline than the current
    // primary's (it was promoted since): an old primary that still answers must not take
    // over because the new one missed a check.
    let claims: Vec<usize> = (0..t.nodes.len())
        .filter(|&i| t.nodes[i].reachable && t.nodes[i].role == Some(NodeRole::Primary))
        .filter(|&i| !t.nodes[i].fenced || t.nodes[i].timeline.unwrap_or(0) > current)
        .collect();
    let key = |i: usize| {
        let n = &t.nodes[i];
        // Newest timeline first; the current primary wins a tie (no flapping), then the
        // furthest WAL, then configuration order (every proxy decides alike).
        (
            n.timeline.unwrap_or(0),
            t.primary == Some(i),
            n.lsn,
            std::cmp::Reverse(i),
        )
    };
    let best = claims.iter().copied().max_by_key(|&i| key(i))?;
    for &i in &claims {
        if i != best && !t.nodes[i].fenced {
            tracing::error!(
                node = %t.nodes[i].addr,
                timeline = ?t.nodes[i].timeline,
                primary = %t.nodes[best].addr,
                "a second node claims to be the primary; it is fenced and gets no traffic"
            );
            t.nodes[i].fenced = true;
        }
    }
    t.nodes[best].fenced = false;
    if t.primary == Some(best) {
        return None;
    }
    let change = PrimaryChange {
        from: t.primary,
        to: best,
    };
    t.primary = Some(best);
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::record;
    use crate::probe::tests::reading;

    fn shard(roles: &[(NodeRole, u32)]) -> ShardTopology {
        let replicas: Vec<String> = (1..roles.len()).map(|i| format!("n{i}:5432")).collect();
        let mut t = ShardTopology::new("n0:5432", &replicas);
        for (i, &(role, timeline)) in roles.iter().enumerate() {
            let mut r = reading(role, 100);
            r.timeline = Some(timeline);
            record(&mut t.nodes[i], &Ok(r));
        }
        t
    }

    #[test]
    fn the_configured_primary_stays_when_it_is_one() {
        let mut t = shard(&[(NodeRole::Primary, 1), (NodeRole::Replica, 1)]);
        assert_eq!(resolve_primary(&mut t), None);
        assert_eq!(t.primary, Some(0));
    }

    #[test]
    fn a_promoted_replica_on_a_newer_timeline_is_adopted_and_the_old_primary_fenced() {
        let mut t = shard(&[
            (NodeRole::Primary, 1),
            (NodeRole::Primary, 2),
            (NodeRole::Replica, 2),
        ]);
        assert_eq!(
            resolve_primary(&mut t),
            Some(PrimaryChange {
                from: Some(0),
                to: 1
            })
        );
        assert!(t.nodes[0].fenced);
        assert!(!t.is_live_replica(0));
        // Back as a standby still on the old timeline (not rewound, not streaming): fenced.
        record(&mut t.nodes[0], &Ok(reading(NodeRole::Replica, 100)));
        assert_eq!(resolve_primary(&mut t), None);
        assert!(t.nodes[0].fenced);
        t.nodes[0].timeline = None;
        assert_eq!(resolve_primary(&mut t), None);
        assert!(t.nodes[0].fenced);
        // Rejoined: streaming the new primary's timeline, it is a replica again.
        t.nodes[0].timeline = Some(2);
        assert_eq!(resolve_primary(&mut t), None);
        assert!(!t.nodes[0].fenced);
        assert!(t.is_live_replica(0));
    }

    #[test]
    fn a_fenced_old_primary_does_not_take_over_when_the_new_one_misses_a_check() {
        let mut t = shard(&[(NodeRole::Primary, 1), (NodeRole::Primary, 2)]);
        assert!(resolve_primary(&mut t).is_some());
        assert_eq!(t.primary, Some(1));
        t.nodes[1].reachable = false;
        assert_eq!(resolve_primary(&mut t), None);
        assert_eq!(t.primary, Some(1));
        assert!(t.nodes[0].fenced);
        // Promoted again later (a newer timeline), it is the primary once more.
        t.nodes[0].timeline = Some(3);
        assert!(resolve_primary(&mut t).is_some());
        assert_eq!(t.primary, Some(0));
        assert!(!t.nodes[0].fenced);
    }

    #[test]
    fn nothing_changes_while_no_node_claims_the_role() {
        let mut t = shard(&[(NodeRole::Replica, 1), (NodeRole::Replica, 1)]);
        t.nodes[0].reachable = false;
        assert_eq!(resolve_primary(&mut t), None);
        assert_eq!(t.primary, Some(0));
    }
}
