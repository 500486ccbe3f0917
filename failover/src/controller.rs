//! The failover controller: after each round of checks it re-decides the primary, judges
//! whether the primary is dead, and if so promotes the best replica and repoints the
//! others, logging each step with its timing.

use std::time::{Duration, Instant};

use crate::candidate::{choose_candidate, PromotionRules};
use crate::control::ProbeCredentials;
use crate::detector::{judge, PrimaryVerdict};
use crate::error::ProbeError;
use crate::fencing::resolve_primary;
use crate::node_status::NodeRole;
use crate::promotion::{drop_synchronous, promote, repoint, ReplicationLogin};
use crate::rejoin::{RejoinCommand, Rejoiner};
use crate::topology::{ShardPhase, ShardTopology, TopologyPublisher};

/// What failover may do, from `[databases.failover]`.
#[derive(Debug, Clone)]
pub struct FailoverSettings {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub rules: PromotionRules,
    pub credentials: ProbeCredentials,
    pub replication: ReplicationLogin,
    pub timeout: Duration,
    /// Zero: never turn synchronous replication off.
    pub synchronous_fallback: Duration,
    /// How long the data plane holds a write waiting for a primary; a switchover must
    /// release writes well within it.
    pub hold_timeout: Duration,
    /// `rejoin_command`, run for fenced old primaries; `None`: they wait for an operator.
    pub rejoin: Option<RejoinCommand>,
}

/// Decides and acts for one shard; the monitor calls it after every round.
pub struct FailoverController {
    pub(crate) settings: FailoverSettings,
    /// When the primary first failed a check in the current outage.
    pub(crate) outage_since: Option<Instant>,
    reported_partition: bool,
    rejoiner: Option<Rejoiner>,
}

impl FailoverController {
    pub fn new(settings: FailoverSettings) -> FailoverController {
        FailoverController {
            rejoiner: settings
                .rejoin
                .clone()
                .map(|command| Rejoiner::new(command, settings.credentials.tasks.clone())),
            settings,
            outage_since: None,
            reported_partition: false,
        }
    }

    /// Updates `next` (not yet published) from the round's readings; when the primary is
    /// dead and failover is on, publishes the failover through `shared` as it goes.
    pub async fn after_round(&mut self, next: &mut ShardTopology, shared: &TopologyPublisher) {
        if let Some(change) = resolve_primary(next) {
            let from = change.from.map(|i| next.nodes[i].addr.clone());
            tracing::warn!(from = ?from, to = %next.nodes[change.to].addr, "primary changed: adopting the node on the newest timeline");
            self.outage_since = None;
        }
        match judge(next, self.settings.failure_threshold) {
            PrimaryVerdict::Alive => {
                if let Some(since) = self.outage_since.take() {
                    tracing::info!(after = ?since.elapsed(), "the primary answers again");
                }
                self.reported_partition = false;
                next.phase = ShardPhase::Healthy;
            }
            PrimaryVerdict::Suspect => {
                self.outage_since.get_or_insert_with(Instant::now);
                next.phase = ShardPhase::PrimaryUnreachable;
            }
            PrimaryVerdict::Partitioned { witnesses } => {
                if !self.reported_partition {
                    let witnesses: Vec<&str> = witnesses
                        .iter()
                        .map(|&i| next.nodes[i].addr.as_str())
                        .collect();
                    tracing::error!(?witnesses, "the primary is unreachable from this proxy but replicas still stream from it: not promoting (network partition?)");
                    self.reported_partition = true;
                }
                next.phase = ShardPhase::Partitioned;
            }
            PrimaryVerdict::Unknown => {}
            PrimaryVerdict::Dead => self.fail_over(next, shared).await,
        }
        if let Some(rejoiner) = &mut self.rejoiner {
            rejoiner.after_round(next);
        }
    }

    async fn fail_over(&mut self, next: &mut ShardTopology, shared: &TopologyPublisher) {
        let Some(dead) = next.primary else {
            return;
        };
        let since = *self.outage_since.get_or_insert_with(Instant::now);
        if !self.settings.enabled {
            if next.phase != ShardPhase::NoPrimary("failover is off".into()) {
                tracing::error!(primary = %next.nodes[dead].addr, "the primary is dead and failover is off ([databases.failover] enabled = false)");
            }
            next.phase = ShardPhase::NoPrimary("failover is off".into());
            return;
        }
        let detected = since.elapsed();
        let candidate = match choose_candidate(next, dead, &self.settings.rules) {
            Ok(c) => c,
            Err(why) => {
                if next.phase != ShardPhase::NoPrimary(why.clone()) {
                    tracing::error!(primary = %next.nodes[dead].addr, "the primary is dead and no replica is promoted: {why}");
                }
                next.phase = ShardPhase::NoPrimary(why);
                return;
            }
        };
        tracing::warn!(dead = %next.nodes[dead].addr, candidate = %next.nodes[candidate].addr, ?detected, "primary is dead; promoting the most advanced replica");
        if let Err(e) = self
            .replace_dead(next, shared, dead, candidate, since)
            .await
        {
            let addr = &next.nodes[candidate].addr;
            next.phase = ShardPhase::NoPrimary(format!("promoting {addr} failed: {e}"));
        }
    }

    /// Promotes `candidate` in place of the dead primary `dead`: writes wait from the
    /// moment it starts until the promoted node is published; then the other replicas
    /// are repointed. `since` is when the outage began, for the logged timings. On
    /// failure `dead` stays the primary of `next`.
    pub(crate) async fn replace_dead(
        &mut self,
        next: &mut ShardTopology,
        shared: &TopologyPublisher,
        dead: usize,
        candidate: usize,
        since: Instant,
    ) -> Result<Vec<Repointed>, ProbeError> {
        let addr = next.nodes[candidate].addr.clone();
        // Writes wait from here until the new primary is published.
        next.primary = None;
        next.phase = ShardPhase::FailingOver;
        shared.publish(next.clone());
        if let Err(e) = promote(&addr, &self.settings.credentials, self.promote_timeout()).await {
            tracing::error!(candidate = %addr, "promotion failed: {e}");
            next.primary = Some(dead);
            return Err(e);
        }
        self.publish_promoted(next, shared, dead, candidate);
        tracing::warn!(primary = %addr, promoted = ?since.elapsed(), "replica promoted; writes go to it now");
        self.outage_since = None;
        let repointed = self.after_promotion(next, shared, dead, candidate).await;
        tracing::warn!(primary = %addr, repointed = ?since.elapsed(), "failover complete");
        Ok(repointed)
    }

    /// How long `pg_promote` may take.
    pub(crate) fn promote_timeout(&self) -> Duration {
        self.settings.timeout.max(Duration::from_secs(30))
    }

    /// Publishes `promoted` as the primary, with the node it replaces fenced.
    pub(crate) fn publish_promoted(
        &self,
        next: &mut ShardTopology,
        shared: &TopologyPublisher,
        old: usize,
        promoted: usize,
    ) {
        next.primary = Some(promoted);
        next.nodes[old].fenced = true;
        next.nodes[promoted].role = Some(NodeRole::Primary);
        // Promotion starts the next timeline; the node's next check confirms it.
        let timeline = next.nodes[old].timeline.max(next.nodes[promoted].timeline);
        next.nodes[promoted].timeline = timeline.map(|t| t + 1);
        next.phase = ShardPhase::Healthy;
        shared.publish(next.clone());
    }

    /// After a promotion: repoints the other replicas, and when `old` ran synchronous
    /// replication, watches that the new primary gets a synchronous standby.
    pub(crate) async fn after_promotion(
        &self,
        next: &ShardTopology,
        shared: &TopologyPublisher,
        old: usize,
        promoted: usize,
    ) -> Vec<Repointed> {
        let s = &self.settings;
        let repointed = self.repoint_others(next, old, promoted).await;
        if next.nodes[old].synchronous && !s.synchronous_fallback.is_zero() {
            let addr = next.nodes[promoted].addr.clone();
            let credentials = s.credentials.clone();
            let (wait, timeout) = (s.synchronous_fallback, s.timeout);
            let shared = shared.topology.clone();
            // Owned with the shard's other tasks: a stopping proxy ends the wait with them.
            s.credentials.tasks.spawn_stoppable(async move {
                tokio::time::sleep(wait).await;
                let t = shared.load();
                let has_standby = t.primary == Some(promoted)
                    && t.nodes[promoted].standbys.iter().any(|s| s.acknowledges);
                if !has_standby {
                    tracing::warn!(primary = %addr, ?wait, "no synchronous standby came: turning synchronous replication off so writes do not hang");
                    if let Err(e) = drop_synchronous(&addr, &credentials, timeout).await {
                        tracing::error!(primary = %addr, "could not turn synchronous replication off: {e}");
                    }
                }
            });
        }
        repointed
    }

    /// Points every reachable replica but `old` and `primary` at `primary`.
    async fn repoint_others(
        &self,
        t: &ShardTopology,
        old: usize,
        primary: usize,
    ) -> Vec<Repointed> {
        let s = &self.settings;
        let others =
            (0..t.nodes.len()).filter(|&i| i != old && i != primary && t.nodes[i].reachable);
        let Some(peer) = t.nodes[primary].peer_addr.clone() else {
            tracing::error!(primary = %t.nodes[primary].addr, "the new primary's peer address is unknown; repoint the replicas by hand");
            return others
                .map(|i| Repointed {
                    addr: t.nodes[i].addr.clone(),
                    error: Some("the new primary's peer address is unknown".to_string()),
                })
                .collect();
        };
        let mut repointed = Vec::new();
        for i in others {
            let node = &t.nodes[i];
            let result = repoint(
                &node.addr,
                &t.nodes[primary].addr,
                &peer,
                &s.credentials,
                &s.replication,
                s.timeout,
            )
            .await;
            match &result {
                Ok(()) => {
                    tracing::info!(replica = %node.addr, primary = %peer, "replica repointed")
                }
                Err(e) => tracing::error!(replica = %node.addr, "repointing failed: {e}"),
            }
            repointed.push(Repointed {
                addr: node.addr.clone(),
                error: result.err().map(|e| e.to_string()),
            });
        }
        repointed
    }
}

/// A replica pointed at a new primary after a promotion, or why it could not be.
#[derive(Debug, Clone)]
pub struct Repointed {
    pub addr: String,
    pub error: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Failover on, default rules, a control login that is never used.
    pub fn controller() -> FailoverController {
        FailoverController::new(FailoverSettings {
            enabled: true,
            failure_threshold: 3,
            rules: PromotionRules {
                max_lag: Some(pgshard_config::LagLimit::Bytes(1_000)),
                ..PromotionRules::default()
            },
            credentials: ProbeCredentials {
                user: "postgres".into(),
                password: None,
                database: "postgres".into(),
                tls: None,
                tasks: crate::Tasks::default(),
            },
            replication: ReplicationLogin {
                user: "replicator".into(),
                password: None,
            },
            timeout: Duration::from_secs(1),
            synchronous_fallback: Duration::ZERO,
            hold_timeout: Duration::from_secs(30),
            rejoin: None,
        })
    }
}
