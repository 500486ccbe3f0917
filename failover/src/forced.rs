//! Forced promotion: an administrator names the replica to replace a dead primary when
//! the safety rules refuse every candidate (most often: all are further behind than
//! `max_failover_lag`). Whatever the replica had not received is lost, which is the
//! administrator's call; but only a primary the detector declares dead is replaced, never
//! one that still answers or that replicas still hear.

use std::time::Instant;

use crate::command::{CommandError, CommandReport};
use crate::controller::FailoverController;
use crate::detector::{judge, PrimaryVerdict};
use crate::node_status::NodeRole;
use crate::topology::{ShardTopology, TopologyPublisher};

impl FailoverController {
    /// Promotes replica `target` in place of the dead primary of `next`, through the same
    /// steps as an automatic failover but without the candidate rules.
    pub(crate) async fn force_promote(
        &mut self,
        next: &mut ShardTopology,
        shared: &TopologyPublisher,
        target: usize,
    ) -> Result<CommandReport, CommandError> {
        let dead = self.check_dead(next)?;
        let started = Instant::now();
        let node = &next.nodes[target];
        let usable = node.reachable && node.role == Some(NodeRole::Replica) && !node.fenced;
        if target == dead || !usable {
            return Err(CommandError::Refused(format!(
                "{} is not a reachable replica",
                node.addr
            )));
        }
        let (old_addr, new_addr) = (next.nodes[dead].addr.clone(), node.addr.clone());
        let behind = match (next.primary_lsn(), node.furthest_lsn()) {
            (Some(primary), Some(has)) => primary.bytes_after(has).to_string(),
            _ => "an unknown number of".to_string(),
        };
        tracing::warn!(dead = %old_addr, replica = %new_addr, "forced promotion: the replica is {behind} bytes behind the last primary position seen; writes it lacks are lost");
        let since = *self.outage_since.get_or_insert(started);
        let repointed = self
            .replace_dead(next, shared, dead, target, since)
            .await
            .map_err(|source| CommandError::PromotionFailed {
                addr: new_addr.clone(),
                source,
            })?;
        let total = started.elapsed();
        Ok(CommandReport {
            old_primary: old_addr,
            new_primary: new_addr,
            writes_held: total,
            total,
            old_primary_state: "dead; fenced if it comes back (rejoin it with pg_rewind)"
                .to_string(),
            repointed,
        })
    }

    /// The primary, when the detector declares it dead; otherwise why it is not.
    fn check_dead(&self, t: &ShardTopology) -> Result<usize, CommandError> {
        let threshold = self.settings.failure_threshold;
        let unknown = || CommandError::Refused("no primary is known now".to_string());
        let dead = t.primary.ok_or_else(unknown)?;
        let primary = &t.nodes[dead].addr;
        let why = match judge(t, threshold) {
            PrimaryVerdict::Dead => return Ok(dead),
            PrimaryVerdict::Alive => format!(
                "the primary {primary} is alive: PROMOTE … FORCE only replaces a dead \
                 primary (for a planned change use SWITCHOVER)"
            ),
            PrimaryVerdict::Suspect => format!(
                "the primary {primary} has failed fewer than failure_threshold ({threshold}) \
                 checks in a row: it is not declared dead yet"
            ),
            PrimaryVerdict::Partitioned { witnesses } => {
                let witnesses: Vec<&str> = witnesses
                    .iter()
                    .map(|&i| t.nodes[i].addr.as_str())
                    .collect();
                format!(
                    "replicas {witnesses:?} still stream from the primary {primary}: it is \
                     alive, only this proxy is cut off from it"
                )
            }
            PrimaryVerdict::Unknown => return Err(unknown()),
        };
        Err(CommandError::Refused(why))
    }
}

#[cfg(test)]
mod tests {
    use crate::command::CommandError;
    use crate::controller::tests::controller;
    use crate::node_status::NodeRole;
    use crate::probe::record;
    use crate::probe::tests::reading;
    use crate::topology::ShardTopology;

    #[test]
    fn only_a_primary_declared_dead_is_replaced() {
        let c = controller();
        let mut t = ShardTopology::new("p:5432", &["r1:5432".into()]);
        record(&mut t.nodes[0], &Ok(reading(NodeRole::Primary, 100)));
        record(&mut t.nodes[1], &Ok(reading(NodeRole::Replica, 100)));
        let why = |r: Result<usize, CommandError>| match r {
            Err(CommandError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        assert!(why(c.check_dead(&t)).contains("alive"));
        t.nodes[0].reachable = false;
        t.nodes[0].failures = 2;
        assert!(why(c.check_dead(&t)).contains("not declared dead"));
        t.nodes[0].failures = 3;
        // The replica still streams from it: it is alive, this proxy is cut off.
        assert!(why(c.check_dead(&t)).contains("still stream"));
        t.nodes[1].streaming = false;
        assert_eq!(c.check_dead(&t).ok(), Some(0));
    }
}
