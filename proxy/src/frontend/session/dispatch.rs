//! Sending a held batch to the node it must run on: writes to the primary (waiting for
//! one during a failover), reads to a replica, run again elsewhere when that replica fails
//! before answering.

use pgshard_router::RoleHint;

use super::{Flow, Replay, Session};
use crate::frontend::batch::BatchEnd;
use crate::frontend::cancel::CANCELED_MESSAGE;
use crate::frontend::route_decision::{route_batch, BatchRoute};
use crate::net::messages::tag;
use crate::net::Frame;
use crate::routing::{NodeId, ReadNeeds};

impl Session {
    /// Decides where a held batch runs and sends it there.
    pub(super) async fn dispatch(&mut self, frames: Vec<Frame>, end: BatchEnd) -> Flow {
        let Some(last) = frames.last().cloned() else {
            return Flow::Continue;
        };
        if frames.len() == 1 && last.tag() == tag::FLUSH {
            return Flow::Continue;
        }
        self.core.cancel.waiting();
        let route = if self.core.mode == pgshard_config::PoolMode::Session || self.pinned.is_some()
        {
            BatchRoute::Primary
        } else {
            route_batch(&frames, end, &self.core.db.classifier, &self.statements)
        };
        match route {
            BatchRoute::Refuse { code, message } => {
                self.core.cancel.sending();
                self.refuse(&last, code, &message).await
            }
            BatchRoute::Primary => {
                self.wrote = true;
                self.send_to_primary(frames).await
            }
            BatchRoute::Read {
                replica_hint,
                runs_statements,
            } => match self.core.role.current() {
                Some(RoleHint::Primary) => self.send_to_primary(frames).await,
                role => {
                    let needs = ReadNeeds::for_read(
                        self.core.db.config.routing.read_your_writes,
                        self.core.written_at,
                        role,
                        replica_hint,
                    );
                    let nodes = self.shard().read_order(needs, &[], runs_statements);
                    self.send_read(frames, end, nodes, needs, Vec::new()).await
                }
            },
        }
    }

    /// Runs a read again on a node it has not been tried on.
    pub(super) async fn resend(&mut self, replay: Replay) -> Flow {
        let nodes = self.shard().read_order(replay.needs, &replay.tried, false);
        self.send_read(replay.frames, replay.end, nodes, replay.needs, replay.tried)
            .await
    }

    /// Sends a batch to the primary, waiting out a failover as the checkout does.
    async fn send_to_primary(&mut self, frames: Vec<Frame>) -> Flow {
        let Some(last) = frames.last().cloned() else {
            return Flow::Continue;
        };
        if self.server.is_none() {
            match self.core.checkout().primary(0).await {
                Ok((node, server)) => self.attach(node, server),
                Err(failure) => {
                    self.core.cancel.sending();
                    return self.refuse_with(&last, failure).await;
                }
            }
        }
        self.replay = None;
        self.send_frames(frames).await
    }

    /// Checks out a server on the first of `nodes` that can be reached and sends the read.
    /// A node that cannot be reached is banned from reads and the next one tried.
    async fn send_read(
        &mut self,
        frames: Vec<Frame>,
        end: BatchEnd,
        nodes: Vec<NodeId>,
        needs: ReadNeeds,
        mut tried: Vec<NodeId>,
    ) -> Flow {
        let Some(last) = frames.last().cloned() else {
            return Flow::Continue;
        };
        let node = match self.core.checkout().read(0, nodes, &mut tried).await {
            Ok((node, server)) => {
                self.attach(node, server);
                node
            }
            Err(failure) => {
                self.core.cancel.sending();
                return self.refuse_with(&last, failure).await;
            }
        };
        tried.push(node);
        self.replay = (end == BatchEnd::Complete).then(|| Replay {
            frames: frames.clone(),
            end,
            needs,
            tried,
        });
        self.send_frames(frames).await
    }

    /// Forwards a batch to the checked-out server and flushes it; a batch cancelled
    /// while it waited for the server is not sent, and answered 57014.
    async fn send_frames(&mut self, frames: Vec<Frame>) -> Flow {
        if self.core.cancel.sending() {
            if let Some(last) = frames.last() {
                self.release_if_idle();
                return self.refuse(last, "57014", CANCELED_MESSAGE).await;
            }
        }
        if let Some(lease) = &self.lease {
            lease.served_one();
            tracing::debug!(server = %lease.addr(), "batch routed");
        }
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
