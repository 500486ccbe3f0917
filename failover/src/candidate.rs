//! Which replica to promote: the most advanced one that may be, so no acknowledged write
//! is lost.

use pgshard_config::LagLimit;

use crate::node_status::NodeRole;
use crate::topology::ShardTopology;

/// Per-node promotion settings, in topology order.
#[derive(Debug, Clone, Default)]
pub struct PromotionRules {
    pub priority: Vec<u32>,
    pub no_promote: Vec<bool>,
    pub max_lag: Option<LagLimit>,
}

/// Chooses the replica to replace dead primary `dead`, or says why none may be.
///
/// Candidates are reachable replicas not marked `no_promote`. When the dead primary ran
/// synchronous replication, only its synchronous standbys qualify (with quorum commit, all
/// of them must be reachable, since an acknowledged commit may be on any one of them).
/// Otherwise a candidate further behind the last primary position than `max_lag` is
/// refused. The most advanced wins; ties go to the higher priority, then to configuration
/// order, so every proxy picks the same node.
pub fn choose_candidate(
    t: &ShardTopology,
    dead: usize,
    rules: &PromotionRules,
) -> Result<usize, String> {
    let old = &t.nodes[dead];
    let mut candidates: Vec<usize> = (0..t.nodes.len())
        .filter(|&i| i != dead)
        .filter(|&i| t.nodes[i].reachable && t.nodes[i].role == Some(NodeRole::Replica))
        .filter(|&i| !rules.no_promote.get(i).copied().unwrap_or(false))
        .collect();
    if candidates.is_empty() {
        return Err("no reachable replica may be promoted".to_string());
    }
    if old.synchronous {
        if old.sync_standbys.is_empty() {
            return Err(
                "the primary used synchronous replication but no synchronous standby \
                        was connected: no replica is known to hold every acknowledged commit"
                    .to_string(),
            );
        }
        let is_sync = |i: usize| {
            t.nodes[i]
                .name
                .as_ref()
                .is_some_and(|n| old.sync_standbys.contains(n))
        };
        let reachable_sync = candidates.iter().filter(|&&i| is_sync(i)).count();
        if reachable_sync < old.sync_standbys.len() && old.sync_standbys.len() > 1 {
            return Err(format!(
                "only {reachable_sync} of the {} synchronous standbys are reachable; an \
                 acknowledged commit may be on one that is not",
                old.sync_standbys.len()
            ));
        }
        candidates.retain(|&i| is_sync(i));
        if candidates.is_empty() {
            return Err("no synchronous standby is reachable".to_string());
        }
    }
    let key = |i: usize| {
        (
            t.nodes[i].furthest_lsn(),
            rules.priority.get(i).copied().unwrap_or(0),
            std::cmp::Reverse(i),
        )
    };
    let best = candidates
        .into_iter()
        .max_by_key(|&i| key(i))
        .ok_or_else(|| "no candidate".to_string())?;
    if !old.synchronous {
        if let (Some(limit), Some(primary_lsn), Some(has)) =
            (rules.max_lag, t.primary_lsn(), t.nodes[best].furthest_lsn())
        {
            let behind = primary_lsn.bytes_after(has);
            let too_far = match limit {
                LagLimit::Bytes(max) => behind > max,
                LagLimit::Time(max) => {
                    behind > 0 && t.nodes[best].replay_delay.is_some_and(|d| d > max)
                }
            };
            if too_far {
                return Err(format!(
                    "the most advanced replica {} is {behind} bytes behind the last primary \
                     position seen, more than max_failover_lag allows",
                    t.nodes[best].addr
                ));
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::probe::record;
    use crate::probe::tests::reading;
    use std::time::Instant;

    fn shard(lsns: &[u64]) -> ShardTopology {
        let replicas: Vec<String> = (1..lsns.len()).map(|i| format!("r{i}:5432")).collect();
        let mut t = ShardTopology::new("p:5432", &replicas);
        record(&mut t.nodes[0], &Ok(reading(NodeRole::Primary, lsns[0])));
        t.push_position(Instant::now(), Lsn(lsns[0]));
        for (i, &lsn) in lsns.iter().enumerate().skip(1) {
            let mut r = reading(NodeRole::Replica, lsn);
            r.name = Some(format!("r{i}"));
            record(&mut t.nodes[i], &Ok(r));
        }
        t.nodes[0].reachable = false;
        t
    }

    #[test]
    fn the_most_advanced_replica_wins_then_priority_then_order() {
        let t = shard(&[1000, 900, 950, 950]);
        let rules = PromotionRules::default();
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(2));
        let rules = PromotionRules {
            priority: vec![0, 0, 0, 5],
            ..Default::default()
        };
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(3));
        let rules = PromotionRules {
            no_promote: vec![false, false, true, true],
            ..Default::default()
        };
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(1));
    }

    #[test]
    fn a_replica_too_far_behind_is_refused() {
        let t = shard(&[10_000, 1_000]);
        let rules = PromotionRules {
            max_lag: Some(LagLimit::Bytes(5_000)),
            ..Default::default()
        };
        assert!(choose_candidate(&t, 0, &rules).is_err());
        let rules = PromotionRules {
            max_lag: Some(LagLimit::Bytes(9_000)),
            ..Default::default()
        };
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(1));
    }

    #[test]
    fn with_synchronous_replication_only_a_synchronous_standby_qualifies() {
        let mut t = shard(&[1000, 1000, 990]);
        t.nodes[0].synchronous = true;
        t.nodes[0].sync_standbys = vec!["r2".into()];
        let rules = PromotionRules::default();
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(2));
        t.nodes[2].reachable = false;
        assert!(choose_candidate(&t, 0, &rules).is_err());
        t.nodes[0].sync_standbys.clear();
        assert!(choose_candidate(&t, 0, &rules).is_err());
    }
}
