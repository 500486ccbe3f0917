//! Manual switchover: a chosen replica replaces the live primary, for maintenance,
//! without losing a write and without failing one that is merely held.
//!
//! New writes are held (the shard is published as switching over), running transactions
//! on the primary get a moment to finish, then the primary is made read-only and its
//! remaining client sessions are disconnected, so nothing commits on it after the WAL
//! position read next. The replica is promoted once it has replayed up to that position
//! (and as far as any other replica received, so they can follow it), the new primary is
//! published, which releases the writes, and the other replicas are repointed. The old
//! primary stays up, read-only and on the old timeline: fenced like a primary that came
//! back after a failover.

use std::time::{Duration, Instant};

use crate::command::{CommandError, CommandReport};
use crate::controller::FailoverController;
use crate::error::ProbeError;
use crate::lsn::Lsn;
use crate::promotion::promote;
use crate::quiesce::NodeSession;
use crate::topology::{ShardPhase, ShardTopology, TopologyPublisher};
use pgshard_config::LagLimit;

/// How often a switchover looks again at busy sessions and at the replica's replay.
const POLL: Duration = Duration::from_millis(10);

/// A step of the switchover that failed, and why.
type StepError = (&'static str, ProbeError);

/// The control connections a switchover works through.
struct Sessions {
    primary: NodeSession,
    replica: NodeSession,
    /// The other replicas that could be reached.
    others: Vec<NodeSession>,
}

impl FailoverController {
    /// Switches the primary of `next` over to replica `target`; see the module doc.
    /// On an error before the promotion, the old primary is made writable again and
    /// stays the primary.
    pub(crate) async fn switchover(
        &mut self,
        next: &mut ShardTopology,
        shared: &TopologyPublisher,
        target: usize,
    ) -> Result<CommandReport, CommandError> {
        let started = Instant::now();
        let old = self.check_switchover(next, target)?;
        let old_addr = next.nodes[old].addr.clone();
        let new_addr = next.nodes[target].addr.clone();
        let sessions = self.open_sessions(next, old, target).await?;
        tracing::warn!(primary = %old_addr, replica = %new_addr, "switchover: holding new writes");
        next.phase = ShardPhase::SwitchingOver;
        shared.publish(next.clone());
        let held = Instant::now();
        let mut read_only = false;
        if let Err((step, e)) = self.hand_over(&sessions, held, &mut read_only).await {
            return Err(self
                .roll_back(next, shared, &sessions, read_only, step, e)
                .await);
        }
        let s = &self.settings;
        if let Err(e) = promote(&new_addr, &s.credentials, self.promote_timeout()).await {
            // pg_promote may give up waiting and still finish: only a node still in
            // recovery is safe to roll back from.
            if sessions.replica.in_recovery().await.unwrap_or(true) {
                return Err(self
                    .roll_back(
                        next,
                        shared,
                        &sessions,
                        read_only,
                        "promoting the replica",
                        e,
                    )
                    .await);
            }
        }
        self.publish_promoted(next, shared, old, target);
        let writes_held = held.elapsed();
        tracing::warn!(primary = %new_addr, ?writes_held, "switchover: replica promoted; writes go to it now");
        let repointed = self.after_promotion(next, shared, old, target).await;
        let total = started.elapsed();
        tracing::warn!(primary = %new_addr, old = %old_addr, ?total, "switchover complete; the old primary is read-only and fenced");
        Ok(CommandReport {
            old_primary: old_addr,
            new_primary: new_addr,
            writes_held,
            total,
            old_primary_state: "read-only primary on the old timeline, fenced (rejoin it with \
                                pg_rewind)"
                .to_string(),
            repointed,
        })
    }

    /// The primary a switchover to `target` replaces, or why there may be none now.
    fn check_switchover(&self, t: &ShardTopology, target: usize) -> Result<usize, CommandError> {
        let refuse = |message: String| Err(CommandError::Refused(message));
        if !self.settings.enabled {
            return refuse(
                "a switchover needs [databases.failover] enabled = true: only then do \
                 writes wait for the new primary, and a superuser control login is set"
                    .to_string(),
            );
        }
        let Some(old) = t.primary else {
            return refuse(
                "the shard has no primary now; to replace a dead one use PROMOTE … FORCE"
                    .to_string(),
            );
        };
        let (old_node, node) = (&t.nodes[old], &t.nodes[target]);
        if t.phase != ShardPhase::Healthy || !old_node.reachable {
            return refuse(format!(
                "the primary {} does not answer its health checks; a switchover needs a \
                 live primary (to replace a dead one: PROMOTE … FORCE)",
                old_node.addr
            ));
        }
        if target == old {
            return refuse(format!("{} is the primary already", node.addr));
        }
        if !t.is_live_replica(target) || !node.streaming {
            return refuse(format!(
                "{} is not a reachable replica streaming from the primary",
                node.addr
            ));
        }
        if let (Some(LagLimit::Bytes(max)), Some(lag)) =
            (self.settings.rules.max_lag, t.lag_bytes(target))
        {
            if lag > max {
                return refuse(format!(
                    "{} is {lag} bytes behind the primary, more than max_failover_lag: \
                     writes would wait while it catches up; try again once it has",
                    node.addr
                ));
            }
        }
        Ok(old)
    }

    /// Connects to the nodes before writes are held, so a node that cannot be reached
    /// costs no hold.
    async fn open_sessions(
        &self,
        t: &ShardTopology,
        old: usize,
        target: usize,
    ) -> Result<Sessions, CommandError> {
        let s = &self.settings;
        let open = |i: usize| NodeSession::open(&t.nodes[i].addr, &s.credentials, s.timeout);
        let refused = |e: ProbeError| CommandError::Refused(format!("cannot switch over: {e}"));
        let primary = open(old).await.map_err(refused)?;
        let replica = open(target).await.map_err(refused)?;
        let mut others = Vec::new();
        for i in (0..t.nodes.len()).filter(|&i| i != old && i != target) {
            if t.is_live_replica(i) {
                if let Ok(session) = open(i).await {
                    others.push(session);
                }
            }
        }
        Ok(Sessions {
            primary,
            replica,
            others,
        })
    }

    /// Stops writes on the old primary and waits for the replica to replay all of them.
    async fn hand_over(
        &self,
        sessions: &Sessions,
        held: Instant,
        read_only: &mut bool,
    ) -> Result<(), StepError> {
        let budget = self.settings.hold_timeout / 4;
        let at = |step: &'static str| move |e: ProbeError| (step, e);
        let drained = "waiting for running transactions";
        loop {
            let busy = sessions.primary.busy_clients().await.map_err(at(drained))?;
            if busy == 0 {
                tracing::info!(after = ?held.elapsed(), "switchover: no transaction runs on the old primary");
                break;
            }
            if held.elapsed() >= budget {
                tracing::warn!(sessions = busy, after = ?held.elapsed(), "switchover: sessions still busy on the old primary; they are disconnected");
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let stopping = "making the old primary read-only";
        sessions
            .primary
            .make_read_only()
            .await
            .map_err(at(stopping))?;
        *read_only = true;
        let terminated = sessions
            .primary
            .terminate_clients()
            .await
            .map_err(at(stopping))?;
        let mut lsn = sessions.primary.current_lsn().await.map_err(at(stopping))?;
        tracing::info!(%lsn, terminated, after = ?held.elapsed(), "switchover: the old primary is read-only and its client sessions are closed");
        for other in &sessions.others {
            if let Ok(received) = other.received_lsn().await {
                lsn = lsn.max(received);
            }
        }
        let caught_up = Instant::now();
        let catching_up = "waiting for the replica to replay the old primary's WAL";
        loop {
            let replayed: Lsn = sessions
                .replica
                .replayed_lsn()
                .await
                .map_err(at(catching_up))?;
            if replayed >= lsn {
                tracing::info!(%lsn, waited = ?caught_up.elapsed(), after = ?held.elapsed(), "switchover: the replica has replayed everything");
                return Ok(());
            }
            if caught_up.elapsed() >= budget {
                let what = format!("replayed up to {replayed} of {lsn} within {budget:?}");
                return Err((catching_up, sessions.replica.unexpected(what)));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Gives the old primary its writes back after a failed switchover.
    async fn roll_back(
        &self,
        next: &mut ShardTopology,
        shared: &TopologyPublisher,
        sessions: &Sessions,
        read_only: bool,
        step: &'static str,
        source: ProbeError,
    ) -> CommandError {
        let primary = next.primary.map(|p| next.nodes[p].addr.clone());
        let primary = primary.unwrap_or_default();
        if read_only {
            if let Err(e) = sessions.primary.make_writable().await {
                tracing::error!(%primary, "switchover: could not make the old primary writable again; run ALTER SYSTEM RESET default_transaction_read_only there: {e}");
            }
        }
        next.phase = ShardPhase::Healthy;
        shared.publish(next.clone());
        tracing::error!(%primary, "switchover: {step} failed, writes go to the old primary again: {source}");
        CommandError::RolledBack {
            step,
            primary,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::command::CommandError;
    use crate::controller::tests::controller;
    use crate::lsn::Lsn;
    use crate::node_status::NodeRole;
    use crate::probe::record;
    use crate::probe::tests::reading;
    use crate::topology::{ShardPhase, ShardTopology};

    /// A live primary at 10 000 and replicas at 9 500 and 5 000.
    fn shard() -> ShardTopology {
        let mut t = ShardTopology::new("p:5432", &["r1:5432".into(), "r2:5432".into()]);
        record(&mut t.nodes[0], &Ok(reading(NodeRole::Primary, 10_000)));
        t.push_position(Instant::now(), Lsn(10_000));
        record(&mut t.nodes[1], &Ok(reading(NodeRole::Replica, 9_500)));
        record(&mut t.nodes[2], &Ok(reading(NodeRole::Replica, 5_000)));
        t
    }

    fn refused(result: Result<usize, CommandError>) -> String {
        match result {
            Err(CommandError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn only_a_close_streaming_replica_of_a_live_primary_may_take_over() {
        let c = controller();
        let t = shard();
        assert_eq!(c.check_switchover(&t, 1).ok(), Some(0));
        assert!(refused(c.check_switchover(&t, 0)).contains("the primary already"));
        assert!(refused(c.check_switchover(&t, 2)).contains("bytes behind"));
        let mut down = t.clone();
        down.nodes[0].reachable = false;
        assert!(refused(c.check_switchover(&down, 1)).contains("does not answer"));
        let mut busy = t.clone();
        busy.phase = ShardPhase::FailingOver;
        assert!(c.check_switchover(&busy, 1).is_err());
        let mut quiet = t;
        quiet.nodes[1].streaming = false;
        assert!(refused(c.check_switchover(&quiet, 1)).contains("streaming"));
    }

    #[test]
    fn a_switchover_holds_writes_but_keeps_the_primary() {
        let mut t = shard();
        t.phase = ShardPhase::SwitchingOver;
        assert_eq!(t.primary, Some(0));
        assert_eq!(t.writable_primary(), None);
        t.phase = ShardPhase::Healthy;
        assert_eq!(t.writable_primary(), Some(0));
    }
}
