//! Which replica to promote: the most advanced one that may be, so no acknowledged write
//! is lost.

use pgshard_config::LagLimit;

use crate::node_status::NodeRole;
use crate::sync_standbys::commits_are_reachable;
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
/// synchronous replication, a promotion happens only when the reachable replicas are
/// proven to hold every acknowledged commit (see [`commits_are_reachable`]); the most
/// advanced one then holds them all. Otherwise a candidate further behind the last
/// primary position than `max_lag` is refused. The most advanced wins; ties go to the higher priority, then to configuration
/// order, so every proxy picks the same node.
pub fn choose_candidate(
    t: &ShardTopology,
    dead: usize,
    rules: &PromotionRules,
) -> Result<usize, String> {
    let old = &t.nodes[dead];
    let candidates: Vec<usize> = (0..t.nodes.len())
        .filter(|&i| i != dead)
        .filter(|&i| t.nodes[i].reachable && t.nodes[i].role == Some(NodeRole::Replica))
        .filter(|&i| !rules.no_promote.get(i).copied().unwrap_or(false))
        .collect();
    if candidates.is_empty() {
        return Err("no reachable replica may be promoted".to_string());
    }
    let reachable_replicas: Vec<usize> = (0..t.nodes.len())
        .filter(|&i| i != dead)
        .filter(|&i| t.nodes[i].reachable && t.nodes[i].role == Some(NodeRole::Replica))
        .collect();
    if old.synchronous {
        let names: Vec<String> = reachable_replicas
            .iter()
            .filter_map(|&i| t.nodes[i].name.clone())
            .collect();
        let why = commits_are_reachable(old.sync_rule.as_ref(), &old.standbys, &names)?;
        tracing::info!(dead = %old.addr, "synchronous replication: {why}");
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
    if old.synchronous {
        // The commits are on the most advanced reachable replica; one that may not be
        // promoted must not be ahead of the one that is.
        let ahead = reachable_replicas
            .iter()
            .filter(|&&i| t.nodes[i].furthest_lsn() > t.nodes[best].furthest_lsn())
            .map(|&i| t.nodes[i].addr.as_str())
            .next();
        if let Some(ahead) = ahead {
            return Err(format!(
                "replica {ahead} is ahead of every replica that may be promoted \
                 (no_promote), and an acknowledged commit may be only there"
            ));
        }
    }
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
    use crate::sync_standbys::{Standby, SyncRule};
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

    fn synchronous(t: &mut ShardTopology, rule: &str, rows: &[(&str, bool)]) {
        t.nodes[0].synchronous = true;
        t.nodes[0].sync_rule = SyncRule::parse(rule).ok().flatten();
        t.nodes[0].standbys = rows
            .iter()
            .map(|&(name, acknowledges)| Standby {
                name: name.to_string(),
                acknowledges,
            })
            .collect();
    }

    #[test]
    fn with_synchronous_replication_a_reachable_synchronous_standby_is_needed() {
        let mut t = shard(&[1000, 1000, 990]);
        synchronous(&mut t, "FIRST 1 (r2, r1)", &[("r1", false), ("r2", true)]);
        let rules = PromotionRules::default();
        // r2 holds every acknowledged commit; r1, further ahead, holds them too.
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(1));
        t.nodes[2].reachable = false;
        assert!(choose_candidate(&t, 0, &rules).is_err());
        t.nodes[2].reachable = true;
        t.nodes[0].standbys.clear();
        assert!(choose_candidate(&t, 0, &rules).is_err());
    }

    #[test]
    fn standbys_all_named_walreceiver_are_promoted_when_all_are_reachable() {
        let mut t = shard(&[1000, 990, 1000]);
        for i in 1..3 {
            t.nodes[i].name = Some("walreceiver".into());
        }
        synchronous(
            &mut t,
            "ANY 1 (*)",
            &[("walreceiver", true), ("walreceiver", true)],
        );
        let rules = PromotionRules::default();
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(2));
        t.nodes[2].reachable = false;
        assert!(choose_candidate(&t, 0, &rules).is_err());
    }

    #[test]
    fn a_replica_that_may_not_be_promoted_must_not_be_ahead() {
        let mut t = shard(&[1000, 1000, 990]);
        synchronous(&mut t, "ANY 1 (*)", &[("r1", true), ("r2", true)]);
        let rules = PromotionRules {
            no_promote: vec![false, true, false],
            ..Default::default()
        };
        assert!(choose_candidate(&t, 0, &rules).is_err());
        t.nodes[2].received_lsn = Some(Lsn(1000));
        assert_eq!(choose_candidate(&t, 0, &rules), Ok(2));
    }
}
