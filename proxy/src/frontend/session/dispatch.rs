//! Sending a held batch to the node it must run on, and running a read again elsewhere
//! when its replica fails before answering.

use pgshard_router::RoleHint;

use super::{Flow, Replay, Session};
use crate::frontend::batch::BatchEnd;
use crate::frontend::route_decision::{route_batch, BatchRoute};
use crate::net::messages::tag;
use crate::net::Frame;
use crate::routing::{NodeIndex, ReadNeeds};

impl Session {
    /// Decides where a held batch runs and sends it there.
    pub(super) async fn dispatch(&mut self, frames: Vec<Frame>, end: BatchEnd) -> Flow {
        let Some(last) = frames.last().cloned() else {
            return Flow::Continue;
        };
        if frames.len() == 1 && last.tag() == tag::FLUSH {
            return Flow::Continue;
        }
        let route = if self.mode == pgshard_config::PoolMode::Session || self.pinned.is_some() {
            BatchRoute::Primary
        } else {
            route_batch(&frames, end, &self.db.classifier, &self.statements)
        };
        let (nodes, needs) = match route {
            BatchRoute::Refuse { code, message } => {
                return self.refuse(&last, code, &message).await
            }
            BatchRoute::Primary => {
                self.wrote = true;
                (vec![NodeIndex::Primary], None)
            }
            BatchRoute::Read {
                replica_hint,
                runs_statements,
            } => match self.role.current() {
                Some(RoleHint::Primary) => (vec![NodeIndex::Primary], None),
                role => {
                    let own_writes = self.db.config.routing.read_your_writes
                        && !replica_hint
                        && role != Some(RoleHint::Replica);
                    let needs = ReadNeeds {
                        written_at: self.written_at.filter(|_| own_writes),
                    };
                    (
                        self.shard().read_order(needs, &[], runs_statements),
                        Some(needs),
                    )
                }
            },
        };
        self.send_batch(frames, end, nodes, needs, Vec::new()).await
    }

    /// Runs a read again on a node it has not been tried on.
    pub(super) async fn resend(&mut self, replay: Replay) -> Flow {
        let nodes = self.shard().read_order(replay.needs, &replay.tried, false);
        self.send_batch(
            replay.frames,
            replay.end,
            nodes,
            Some(replay.needs),
            replay.tried,
        )
        .await
    }

    /// Checks out a server on the first of `nodes` that can be reached and sends the
    /// batch. A replica that cannot be reached is banned and the next node tried.
    async fn send_batch(
        &mut self,
        frames: Vec<Frame>,
        end: BatchEnd,
        nodes: Vec<NodeIndex>,
        needs: Option<ReadNeeds>,
        mut tried: Vec<NodeIndex>,
    ) -> Flow {
        let Some(last) = frames.last().cloned() else {
            return Flow::Continue;
        };
        let mut error = None;
        let mut chosen = None;
        for node in nodes {
            match self.ensure_server_on(node).await {
                Ok(()) => {
                    chosen = Some(node);
                    break;
                }
                Err(message) => {
                    if let NodeIndex::Replica(i) = node {
                        self.shard().ban(i);
                    }
                    tried.push(node);
                    error = Some(message);
                }
            }
        }
        let Some(node) = chosen else {
            let message = error.unwrap_or_else(|| {
                "pgshard: no node can serve this read: every replica is down, banned or \
                 lagging, and primary_reads = \"never\""
                    .to_string()
            });
            return self.refuse(&last, "08006", &message).await;
        };
        if let Some(lease) = &self.lease {
            lease.served_one();
            tracing::debug!(node = %node, server = %lease.addr(), "batch routed");
        }
        tried.push(node);
        self.replay = match (needs, node, end) {
            (Some(needs), NodeIndex::Replica(_), BatchEnd::Complete) => Some(Replay {
                frames: frames.clone(),
                end,
                needs,
                tried,
            }),
            _ => None,
        };
        for frame in frames {
            if self.forward(frame).await.is_err() {
                return self.server_lost().await;
            }
        }
        let flushed = match self.server.as_mut() {
            Some(server) => server.flush().await,
            None => Ok(()),
        };
        if flushed.is_err() {
            return self.server_lost().await;
        }
        Flow::Continue
    }
}
