//! The nodes of one shard as the data plane uses them: addresses, bans, load, and the
//! read order for each read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgshard_config::{PrimaryReads, RoutingConfig};
use pgshard_failover::SharedTopology;

use super::balancer::{order, Candidate};
use super::eligibility::{replica_eligible, ReadNeeds};
use super::node::NodeIndex;

/// One node: where it is, its weight, whether the data plane has banned it, and how much
/// it is used (sessions now, batches served).
#[derive(Debug)]
pub struct NodeSlot {
    pub addr: String,
    pub weight: u32,
    banned_at: Mutex<Option<Instant>>,
    active: AtomicUsize,
    served: AtomicU64,
}

impl NodeSlot {
    fn new(addr: String, weight: u32) -> NodeSlot {
        NodeSlot {
            addr,
            weight,
            banned_at: Mutex::new(None),
            active: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// Batches this node has been given.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    fn banned_since(&self) -> Option<Instant> {
        *self.banned_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A shard's primary and replicas, the monitor's topology of them, and the rules that
/// pick a node for each read.
pub struct ShardNodes {
    pub primary: NodeSlot,
    pub replicas: Vec<NodeSlot>,
    pub topology: SharedTopology,
    routing: RoutingConfig,
    turn: AtomicU64,
}

impl ShardNodes {
    pub fn new(
        primary: String,
        replicas: Vec<(String, u32)>,
        topology: SharedTopology,
        routing: RoutingConfig,
    ) -> ShardNodes {
        ShardNodes {
            primary: NodeSlot::new(primary, 1),
            replicas: replicas
                .into_iter()
                .map(|(addr, weight)| NodeSlot::new(addr, weight))
                .collect(),
            topology,
            routing,
            turn: AtomicU64::new(0),
        }
    }

    pub fn slot(&self, node: NodeIndex) -> &NodeSlot {
        match node {
            NodeIndex::Replica(i) if i < self.replicas.len() => &self.replicas[i],
            _ => &self.primary,
        }
    }

    /// Where a read may go, best first; replicas in `tried` are left out. Empty when no
    /// node may serve it (no usable replica and `primary_reads = "never"`). Only reads
    /// that `take_turn` advance the round robin.
    pub fn read_order(
        &self,
        needs: ReadNeeds,
        tried: &[NodeIndex],
        take_turn: bool,
    ) -> Vec<NodeIndex> {
        let topology = self.topology.load();
        let now = Instant::now();
        let mut candidates: Vec<Candidate> = (0..self.replicas.len())
            .filter(|&i| !tried.contains(&NodeIndex::Replica(i)))
            .filter(|&i| !self.banned(i, now))
            .filter(|&i| replica_eligible(&topology, i, self.routing.max_replica_lag, needs))
            .map(|i| Candidate {
                index: i,
                weight: self.replicas[i].weight,
                active: self.replicas[i].active.load(Ordering::Relaxed),
            })
            .collect();
        let primary_candidate = self.replicas.len();
        let primary_allowed = !tried.contains(&NodeIndex::Primary);
        if self.routing.primary_reads == PrimaryReads::Always && primary_allowed {
            candidates.push(Candidate {
                index: primary_candidate,
                weight: 1,
                active: self.primary.active.load(Ordering::Relaxed),
            });
        }
        let turn = if take_turn {
            self.turn.fetch_add(1, Ordering::Relaxed)
        } else {
            self.turn.load(Ordering::Relaxed)
        };
        let mut nodes: Vec<NodeIndex> = order(self.routing.load_balance, candidates, turn)
            .into_iter()
            .map(|c| match c.index {
                i if i == primary_candidate => NodeIndex::Primary,
                i => NodeIndex::Replica(i),
            })
            .collect();
        // The primary always has the data: it is the fallback, and a client waiting to read
        // its own write gets it even under "never".
        let fallback = match self.routing.primary_reads {
            PrimaryReads::Fallback => true,
            PrimaryReads::Never => needs.written_at.is_some(),
            PrimaryReads::Always => false,
        };
        if fallback && primary_allowed && !nodes.contains(&NodeIndex::Primary) {
            nodes.push(NodeIndex::Primary);
        }
        nodes
    }

    /// Gives replica `i` no reads for `replica_ban_time`, and after that only once a health
    /// check has succeeded again.
    pub fn ban(&self, i: usize) {
        if let Some(slot) = self.replicas.get(i) {
            tracing::warn!(replica = %slot.addr, ban = ?self.routing.replica_ban_time, "replica banned from reads");
            *slot.banned_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    fn banned(&self, i: usize, now: Instant) -> bool {
        let Some(since) = self.replicas[i].banned_since() else {
            return false;
        };
        if now < since + self.routing.replica_ban_time {
            return true;
        }
        let topology = self.topology.load();
        let status = &topology.replicas[i];
        !(status.reachable && status.checked_at.is_some_and(|t| t > since))
    }

    /// Counts a session on `node` until the lease is dropped.
    pub fn lease(self: &Arc<Self>, node: NodeIndex) -> NodeLease {
        let slot = self.slot(node);
        slot.active.fetch_add(1, Ordering::Relaxed);
        NodeLease {
            nodes: self.clone(),
            node,
        }
    }
}

/// A session's use of one node, counted for `least_connections` while it lasts.
pub struct NodeLease {
    nodes: Arc<ShardNodes>,
    pub node: NodeIndex,
}

impl NodeLease {
    /// Counts one more batch served by this node.
    pub fn served_one(&self) {
        self.nodes
            .slot(self.node)
            .served
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn addr(&self) -> &str {
        &self.nodes.slot(self.node).addr
    }
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        self.nodes
            .slot(self.node)
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}
