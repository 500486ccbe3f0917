//! The failover controller: after each round of checks it re-decides the primary, judges
//! whether the primary is dead, and if so promotes the best replica and repoints the
//! others, logging each step with its timing.

use std::time::{Duration, Instant};

use crate::candidate::{choose_candidate, PromotionRules};
use crate::control::ProbeCredentials;
use crate::detector::{judge, PrimaryVerdict};
use crate::fencing::resolve_primary;
use crate::promotion::{drop_synchronous, promote, repoint, ReplicationLogin};
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
}

/// Decides and acts for one shard; the monitor calls it after every round.
pub struct FailoverController {
    settings: FailoverSettings,
    /// When the primary first failed a check in the current outage.
    outage_since: Option<Instant>,
    reported_partition: bool,
}

impl FailoverController {
    pub fn new(settings: FailoverSettings) -> FailoverController {
        FailoverController {
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
        let addr = next.nodes[candidate].addr.clone();
        tracing::warn!(dead = %next.nodes[dead].addr, candidate = %addr, ?detected, "primary is dead; promoting the most advanced replica");
        // Writes wait from here until the new primary is published.
        next.primary = None;
        next.phase = ShardPhase::FailingOver;
        shared.publish(next.clone());
        let s = &self.settings;
        if let Err(e) = promote(
            &addr,
            &s.credentials,
            s.timeout.max(Duration::from_secs(30)),
        )
        .await
        {
            tracing::error!(candidate = %addr, "promotion failed: {e}");
            next.primary = Some(dead);
            next.phase = ShardPhase::NoPrimary(format!("promoting {addr} failed: {e}"));
            return;
        }
        let promoted = since.elapsed();
        next.primary = Some(candidate);
        next.nodes[dead].fenced = true;
        next.nodes[candidate].role = Some(crate::node_status::NodeRole::Primary);
        next.phase = ShardPhase::Healthy;
        shared.publish(next.clone());
        tracing::warn!(primary = %addr, ?promoted, "replica promoted; writes go to it now");
        self.outage_since = None;
        self.repoint_others(next, dead, candidate).await;
        tracing::warn!(primary = %addr, repointed = ?since.elapsed(), "failover complete");
        if next.nodes[dead].synchronous && !s.synchronous_fallback.is_zero() {
            let credentials = s.credentials.clone();
            let (wait, timeout) = (s.synchronous_fallback, s.timeout);
            let shared = shared.topology.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let t = shared.load();
                let has_standby =
                    t.primary == Some(candidate) && !t.nodes[candidate].sync_standbys.is_empty();
                if !has_standby {
                    tracing::warn!(primary = %addr, ?wait, "no synchronous standby came: turning synchronous replication off so writes do not hang");
                    if let Err(e) = drop_synchronous(&addr, &credentials, timeout).await {
                        tracing::error!(primary = %addr, "could not turn synchronous replication off: {e}");
                    }
                }
            });
        }
    }

    async fn repoint_others(&self, t: &ShardTopology, dead: usize, primary: usize) {
        let s = &self.settings;
        let Some(peer) = t.nodes[primary].peer_addr.clone() else {
            tracing::error!(primary = %t.nodes[primary].addr, "the new primary's peer address is unknown; repoint the replicas by hand");
            return;
        };
        for (i, node) in t.nodes.iter().enumerate() {
            if i == dead || i == primary || !node.reachable {
                continue;
            }
            match repoint(
                &node.addr,
                &t.nodes[primary].addr,
                &peer,
                &s.credentials,
                &s.replication,
                s.timeout,
            )
            .await
            {
                Ok(()) => {
                    tracing::info!(replica = %node.addr, primary = %peer, "replica repointed")
                }
                Err(e) => tracing::error!(replica = %node.addr, "repointing failed: {e}"),
            }
        }
    }
}
