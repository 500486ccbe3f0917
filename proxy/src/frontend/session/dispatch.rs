//! Sending a held batch to the node it must run on: writes to the primary (waiting for
//! one during a failover), reads to a replica, run again elsewhere when that replica fails
//! before answering.

use std::time::{Duration, Instant};

use pgshard_router::RoleHint;

use super::{CheckoutFailure, Flow, Replay, Session};
use crate::frontend::batch::BatchEnd;
use crate::frontend::route_decision::{route_batch, BatchRoute};
use crate::net::messages::tag;
use crate::net::Frame;
use crate::routing::{NodeId, ReadNeeds};

/// How often a write waiting for a primary looks again.
const HOLD_POLL: Duration = Duration::from_millis(100);

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
        match route {
            BatchRoute::Refuse { code, message } => self.refuse(&last, code, &message).await,
            BatchRoute::Primary => {
                self.wrote = true;
                self.send_to_primary(frames).await
            }
            BatchRoute::Read {
                replica_hint,
                runs_statements,
            } => match self.role.current() {
                Some(RoleHint::Primary) => self.send_to_primary(frames).await,
                role => {
                    let own_writes = self.db.config.routing.read_your_writes
                        && !replica_hint
                        && role != Some(RoleHint::Replica);
                    let needs = ReadNeeds {
                        written_at: self.written_at.filter(|_| own_writes),
                    };
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

    /// Sends a batch to the primary. With failover on, a batch that finds no primary (one
    /// is being promoted, or it does not answer) waits up to `hold_timeout` for one instead
    /// of failing.
    async fn send_to_primary(&mut self, frames: Vec<Frame>) -> Flow {
        let Some(last) = frames.last().cloned() else {
            return Flow::Continue;
        };
        let failover = &self.db.config.failover;
        let hold = if failover.enabled {
            failover.hold_timeout
        } else {
            Duration::ZERO
        };
        let started = Instant::now();
        loop {
            let primary = self.shard().primary();
            // During a hold, a primary that fails its health checks is not dialled: the
            // attempt could hang for connect_timeout while a new primary is promoted.
            let primary = primary.filter(|&p| hold.is_zero() || !self.shard().failing(p));
            let failure = match primary {
                Some(primary) => match self.ensure_server_on(primary).await {
                    Ok(()) => break,
                    Err(failure @ CheckoutFailure::Replay(_)) => {
                        return self.refuse_with(&last, failure).await
                    }
                    Err(failure) => failure,
                },
                None => CheckoutFailure::Unavailable(
                    "pgshard: no primary is available (a failover is under way)".to_string(),
                ),
            };
            if started.elapsed() + HOLD_POLL > hold {
                return self.refuse_with(&last, failure).await;
            }
            tokio::time::sleep(HOLD_POLL).await;
        }
        if started.elapsed() > HOLD_POLL {
            if let Some(lease) = &self.lease {
                tracing::info!(primary = %lease.addr(), waited = ?started.elapsed(), "write served after waiting for a primary");
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
        let mut failure = None;
        let mut chosen = None;
        for node in nodes {
            match self.ensure_server_on(node).await {
                Ok(()) => {
                    chosen = Some(node);
                    break;
                }
                // The node works; the client's settings are the problem.
                Err(refused @ CheckoutFailure::Replay(_)) => {
                    return self.refuse_with(&last, refused).await
                }
                Err(unavailable) => {
                    self.shard().ban(node);
                    tried.push(node);
                    failure = Some(unavailable);
                }
            }
        }
        let Some(node) = chosen else {
            let failure = failure.unwrap_or_else(|| {
                CheckoutFailure::Unavailable(
                    "pgshard: no node can serve this read now: the replicas are down, banned \
                     or lagging, and the primary may not serve it (primary_reads, or it just \
                     failed)"
                        .to_string(),
                )
            });
            return self.refuse_with(&last, failure).await;
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

    /// Forwards a batch to the checked-out server and flushes it.
    async fn send_frames(&mut self, frames: Vec<Frame>) -> Flow {
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
