//! The background task that checks a shard's nodes and publishes what it saw.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::node_status::NodeRole;
use crate::probe::{record, NodeProbe, ProbeCredentials};
use crate::topology::{ShardTopology, SharedTopology};

/// How often and how patiently nodes are checked.
#[derive(Debug, Clone, Copy)]
pub struct MonitorSettings {
    pub interval: Duration,
    pub timeout: Duration,
}

/// Checks every node of one shard each interval, all at once, and swaps in a new
/// [`ShardTopology`]. It stops by itself once nobody else holds the topology.
pub struct ShardMonitor {
    probes: Vec<NodeProbe>,
    topology: SharedTopology,
    settings: MonitorSettings,
}

impl ShardMonitor {
    /// Starts monitoring; the topology says every node is unreachable until checked.
    pub fn spawn(
        primary: &str,
        replicas: &[String],
        credentials: ProbeCredentials,
        settings: MonitorSettings,
    ) -> (SharedTopology, JoinHandle<()>) {
        let topology = Arc::new(ArcSwap::from_pointee(ShardTopology::new(primary, replicas)));
        let probes = std::iter::once(primary)
            .chain(replicas.iter().map(String::as_str))
            .map(|addr| NodeProbe::new(addr, credentials.clone(), settings.timeout))
            .collect();
        let monitor = ShardMonitor {
            probes,
            topology: topology.clone(),
            settings,
        };
        (topology, tokio::spawn(monitor.run()))
    }

    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while Arc::strong_count(&self.topology) > 1 {
            ticker.tick().await;
            self.round().await;
        }
    }

    /// One check of every node, then one swap.
    async fn round(&mut self) {
        let results = futures::future::join_all(self.probes.iter_mut().map(NodeProbe::check)).await;
        let mut next = ShardTopology::clone(&self.topology.load());
        for (i, result) in results.iter().enumerate() {
            let status = if i == 0 {
                &mut next.primary
            } else {
                &mut next.replicas[i - 1]
            };
            let was_reachable = status.reachable;
            record(status, result);
            match result {
                Err(e) if was_reachable || status.failures == 1 => {
                    tracing::warn!(node = %status.addr, "health check failed: {e}")
                }
                Ok(_) if !was_reachable => tracing::info!(node = %status.addr, "node is up"),
                _ => {}
            }
        }
        if let Some(Ok(reading)) = results.first() {
            if let (NodeRole::Primary, Some(lsn)) = (reading.role, reading.lsn) {
                next.push_position(reading.sent_at, lsn);
            }
        }
        self.topology.store(Arc::new(next));
    }
}
