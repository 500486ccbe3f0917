//! Commands an administrator sends to a shard's monitor — a switchover to a chosen
//! replica, or the forced promotion of a replica after the primary died — and what they
//! answer. The monitor runs them between its rounds of checks, so they never race an
//! automatic failover.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::controller::Repointed;
use crate::error::ProbeError;
use crate::topology::ShardTopology;

/// What an administrator asks of one shard; `target` is a node address as configured.
#[derive(Debug)]
pub enum ShardCommand {
    /// Promote `target` in place of the live primary, without losing a write.
    Switchover {
        target: String,
        reply: oneshot::Sender<Result<CommandReport, CommandError>>,
    },
    /// Promote `target` in place of a dead primary, even beyond `max_failover_lag`.
    ForcePromote {
        target: String,
        reply: oneshot::Sender<Result<CommandReport, CommandError>>,
    },
}

/// What a switchover or a forced promotion did.
#[derive(Debug, Clone)]
pub struct CommandReport {
    pub old_primary: String,
    pub new_primary: String,
    /// How long new writes waited for the new primary.
    pub writes_held: Duration,
    /// From the command's start to the last replica repointed.
    pub total: Duration,
    /// What became of the old primary.
    pub old_primary_state: String,
    pub repointed: Vec<Repointed>,
}

impl CommandReport {
    /// One line for the administrator: replicas repointed, and those that failed.
    pub fn replicas_summary(&self) -> String {
        let ok: Vec<&str> = self
            .repointed
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| r.addr.as_str())
            .collect();
        let mut text = format!("repointed: [{}]", ok.join(", "));
        for r in &self.repointed {
            if let Some(e) = &r.error {
                text.push_str(&format!("; {} not repointed: {e}", r.addr));
            }
        }
        text
    }
}

/// Why an administrator's command did nothing, or stopped (the shard is then as before,
/// unless the error says otherwise).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no node {addr} in this shard; its nodes are {nodes}")]
    NoSuchNode { addr: String, nodes: String },
    #[error("{0}")]
    Refused(String),
    #[error("{step} failed, writes go to {primary} again: {source}")]
    RolledBack {
        step: &'static str,
        primary: String,
        source: ProbeError,
    },
    #[error("promoting {addr} failed: {source}")]
    PromotionFailed { addr: String, source: ProbeError },
    #[error("the shard's monitor has stopped")]
    MonitorGone,
}

/// The node of `t` at `addr`, or an error naming the nodes there are.
pub(crate) fn find_node(t: &ShardTopology, addr: &str) -> Result<usize, CommandError> {
    t.node_at(addr).ok_or_else(|| CommandError::NoSuchNode {
        addr: addr.to_string(),
        nodes: t
            .nodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Sends commands to one shard's monitor; cheap to clone.
#[derive(Debug, Clone)]
pub struct ShardControl {
    commands: mpsc::Sender<ShardCommand>,
}

impl ShardControl {
    pub(crate) fn channel() -> (ShardControl, mpsc::Receiver<ShardCommand>) {
        let (commands, receiver) = mpsc::channel(4);
        (ShardControl { commands }, receiver)
    }

    /// Switches the primary over to replica `target`; returns once it is done.
    pub async fn switchover(&self, target: &str) -> Result<CommandReport, CommandError> {
        self.send(|reply| ShardCommand::Switchover {
            target: target.to_string(),
            reply,
        })
        .await
    }

    /// Promotes replica `target` of a shard whose primary is dead, whatever its lag.
    pub async fn force_promote(&self, target: &str) -> Result<CommandReport, CommandError> {
        self.send(|reply| ShardCommand::ForcePromote {
            target: target.to_string(),
            reply,
        })
        .await
    }

    async fn send(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<CommandReport, CommandError>>) -> ShardCommand,
    ) -> Result<CommandReport, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| CommandError::MonitorGone)?;
        answer.await.map_err(|_| CommandError::MonitorGone)?
    }
}
