//! The nodes of one shard as the data plane uses them: addresses, bans, load, and the
//! read order for each read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgshard_config::{PrimaryReads, RoutingConfig};
use pgshard_failover::SharedTopology;

use super::balancer::{order, Candidate};
use super::eligibility::{replica_eligible, ReadNeeds};
use super::node::NodeId;

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

/// A shard's nodes (configuration order: the configured primary, then the replicas),
/// the monitor's topology of them, and the rules that pick a node for each read. Which
/// node is the primary comes from the topology, so it follows a failover.
pub struct ShardNodes {
    pub nodes: Vec<NodeSlot>,
    pub topology: SharedTopology,
    /// Wakes sessions on the primary when another node becomes the primary.
    pub primary_changes: tokio::sync::watch::Receiver<Option<usize>>,
    routing: RoutingConfig,
    turn: AtomicU64,
}

impl ShardNodes {
    /// `nodes`: `(address, weight)` of the configured primary, then of each replica.
    pub fn new(
        nodes: Vec<(String, u32)>,
        topology: SharedTopology,
        primary_changes: tokio::sync::watch::Receiver<Option<usize>>,
        routing: RoutingConfig,
    ) -> ShardNodes {
        ShardNodes {
            nodes: nodes
                .into_iter()
                .map(|(addr, weight)| NodeSlot::new(addr, weight))
                .collect(),
            topology,
            primary_changes,
            routing,
            turn: AtomicU64::new(0),
        }
    }

    pub fn slot(&self, node: NodeId) -> &NodeSlot {
        &self.nodes[node.0.min(self.nodes.len() - 1)]
    }

    /// The node that takes writes now; `None` during a failover or a switchover, or while
    /// no primary is known.
    pub fn primary(&self) -> Option<NodeId> {
        self.topology.load().writable_primary().map(NodeId)
    }

    /// Whether the last health checks of `node` failed (not merely: not checked yet), so a
    /// connection attempt would likely hang until its timeout.
    pub fn failing(&self, node: NodeId) -> bool {
        self.topology
            .load()
            .nodes
            .get(node.0)
            .is_some_and(|n| n.failures > 0)
    }

    /// Where a read may go, best first; nodes in `tried` are left out. Empty when no
    /// node may serve it (no usable replica and `primary_reads = "never"`). Only reads
    /// that `take_turn` advance the round robin.
    pub fn read_order(&self, needs: ReadNeeds, tried: &[NodeId], take_turn: bool) -> Vec<NodeId> {
        let topology = self.topology.load();
        let now = Instant::now();
        let primary = topology.primary.map(NodeId);
        let mut candidates: Vec<Candidate> = (0..self.nodes.len())
            .filter(|&i| !tried.contains(&NodeId(i)))
            .filter(|&i| !self.banned(i, now))
            .filter(|&i| replica_eligible(&topology, i, self.routing.max_replica_lag, needs))
            .map(|i| Candidate {
                index: i,
                weight: self.nodes[i].weight,
                active: self.nodes[i].active.load(Ordering::Relaxed),
            })
            .collect();
        let primary_allowed = primary.filter(|p| !tried.contains(p));
        if let (PrimaryReads::Always, Some(p)) = (self.routing.primary_reads, primary_allowed) {
            candidates.push(Candidate {
                index: p.0,
                weight: 1,
                active: self.nodes[p.0].active.load(Ordering::Relaxed),
            });
        }
        let turn = if take_turn {
            self.turn.fetch_add(1, Ordering::Relaxed)
        } else {
            self.turn.load(Ordering::Relaxed)
        };
        let mut nodes: Vec<NodeId> = order(self.routing.load_balance, candidates, turn)
            .into_iter()
            .map(|c| NodeId(c.index))
            .collect();
        // The primary always has the data: it is the fallback, and a client waiting to read
        // its own write gets it even under "never".
        let fallback = match self.routing.primary_reads {
            PrimaryReads::Fallback => true,
            PrimaryReads::Never => needs.written_at.is_some(),
            PrimaryReads::Always => false,
        };
        if let (true, Some(p)) = (fallback, primary_allowed) {
            if !nodes.contains(&p) {
                nodes.push(p);
            }
        }
        nodes
    }

    /// Gives node `i` no reads for `replica_ban_time`, and after that only once a health
    /// check has succeeded again.
    pub fn ban(&self, node: NodeId) {
        if let Some(slot) = self.nodes.get(node.0) {
            tracing::warn!(replica = %slot.addr, ban = ?self.routing.replica_ban_time, "replica banned from reads");
            *slot.banned_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    /// Whether `node` gets no reads now because it failed a connection or a read.
    pub fn is_banned(&self, node: NodeId) -> bool {
        node.0 < self.nodes.len() && self.banned(node.0, Instant::now())
    }

    fn banned(&self, i: usize, now: Instant) -> bool {
        let Some(since) = self.nodes[i].banned_since() else {
            return false;
        };
        if now < since + self.routing.replica_ban_time {
            return true;
        }
        let topology = self.topology.load();
        let status = &topology.nodes[i];
        !(status.reachable && status.checked_at.is_some_and(|t| t > since))
    }

    /// Counts a session on `node` until the lease is dropped.
    pub fn lease(self: &Arc<Self>, node: NodeId) -> NodeLease {
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
    pub node: NodeId,
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
