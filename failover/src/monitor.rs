//! The background task that checks a shard's nodes and publishes what it saw.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::command::{find_node, ShardCommand, ShardControl};
use crate::control::ProbeCredentials;
use crate::controller::{FailoverController, FailoverSettings};
use crate::node_status::NodeRole;
use crate::probe::{record, NodeProbe};
use crate::topology::{ShardTopology, TopologyPublisher};

/// How often and how patiently nodes are checked.
#[derive(Debug, Clone, Copy)]
pub struct MonitorSettings {
    pub interval: Duration,
    pub timeout: Duration,
}

/// Checks every node of one shard each interval, all at once, lets the failover
/// controller act on the result, and swaps in a new [`ShardTopology`]. Between rounds it
/// runs administrators' commands. It runs until the shard's tasks (in its credentials'
/// [`Tasks`](crate::Tasks)) are stopped, and is then dropped where it stands.
pub struct ShardMonitor {
    probes: Vec<NodeProbe>,
    commands: mpsc::Receiver<ShardCommand>,
    publisher: TopologyPublisher,
    settings: MonitorSettings,
    controller: FailoverController,
}

impl ShardMonitor {
    /// Starts monitoring on `credentials.tasks`; the configured primary is trusted until
    /// checks say otherwise.
    pub fn spawn(
        primary: &str,
        replicas: &[String],
        credentials: ProbeCredentials,
        settings: MonitorSettings,
        failover: FailoverSettings,
    ) -> (TopologyPublisher, ShardControl) {
        let publisher = TopologyPublisher::new(ShardTopology::new(primary, replicas));
        let probes = std::iter::once(primary)
            .chain(replicas.iter().map(String::as_str))
            .map(|addr| NodeProbe::new(addr, credentials.clone(), settings.timeout))
            .collect();
        let (control, commands) = ShardControl::channel();
        let monitor = ShardMonitor {
            probes,
            commands,
            publisher: publisher.clone(),
            settings,
            controller: FailoverController::new(failover),
        };
        // A failover under way when the shard is stopped is dropped with the monitor: the
        // proxy is going away, and nothing would route by its outcome.
        credentials.tasks.spawn_stoppable(monitor.run());
        (publisher, control)
    }

    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.round().await,
                Some(command) = self.commands.recv() => self.command(command).await,
            }
        }
    }

    /// Runs an administrator's command on the current topology and answers it.
    async fn command(&mut self, command: ShardCommand) {
        let mut next = ShardTopology::clone(&self.publisher.topology.load());
        let shared = &self.publisher;
        let (target, reply, switchover) = match command {
            ShardCommand::Switchover { target, reply } => (target, reply, true),
            ShardCommand::ForcePromote { target, reply } => (target, reply, false),
        };
        let result = match find_node(&next, &target) {
            Ok(i) if switchover => self.controller.switchover(&mut next, shared, i).await,
            Ok(i) => self.controller.force_promote(&mut next, shared, i).await,
            Err(e) => Err(e),
        };
        self.publisher.publish(next);
        // The administrator may have left; the command is done all the same.
        let _ = reply.send(result);
    }

    /// One check of every node, the controller's decision, then one swap.
    async fn round(&mut self) {
        let results = futures::future::join_all(self.probes.iter_mut().map(NodeProbe::check)).await;
        let mut next = ShardTopology::clone(&self.publisher.topology.load());
        for (i, result) in results.iter().enumerate() {
            let status = &mut next.nodes[i];
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
        self.controller
            .after_round(&mut next, &self.publisher)
            .await;
        if let Some(p) = next.primary {
            if let Some(Ok(reading)) = results.get(p) {
                if let (NodeRole::Primary, Some(lsn)) = (reading.role, reading.lsn) {
                    next.push_position(reading.sent_at, lsn);
                }
            }
        }
        self.publisher.publish(next);
    }
}
