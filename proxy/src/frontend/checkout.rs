//! Getting a session a server connection: which node (the primary, waiting out a
//! failover, or a replica as the read/write split orders them) and the client's settings
//! replayed on it. One mechanism for one-shard and sharded sessions alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8::Pool;

use crate::backend::pool::{checkout_from, ServerConnector};
use crate::backend::{CheckoutError, PooledServer};
use crate::context::{ProxyContext, UserEntry};
use crate::frontend::settings::ClientSettings;
use crate::net::messages::{self, error_response};
use crate::net::{Frame, Severity};
use crate::routing::{DatabaseRoute, NodeId};

/// How often a write waiting for a primary looks again.
const HOLD_POLL: Duration = Duration::from_millis(100);

/// Why a session got no usable server connection.
#[derive(Debug)]
pub enum CheckoutFailure {
    /// No connection to that node could be had: the client hears why, as `08006`.
    Unavailable(String),
    /// The connection is fine, but the server refused what the session needs on it (the
    /// client's settings, its transaction's BEGIN): the client hears that error, and the
    /// node stays in service.
    Refused(Frame),
}

impl CheckoutFailure {
    /// The failure as the ErrorResponse the client gets for its statement.
    pub fn error(&self) -> Frame {
        match self {
            CheckoutFailure::Unavailable(message) => {
                error_response(Severity::Error, "08006", message)
            }
            CheckoutFailure::Refused(error) => error.clone(),
        }
    }

    /// The failure as a FATAL error that ends a client's login.
    pub fn fatal(&self) -> Frame {
        match self {
            CheckoutFailure::Unavailable(message) => {
                error_response(Severity::Fatal, "08006", message)
            }
            CheckoutFailure::Refused(error) => {
                let (code, message) = messages::error_fields(error);
                error_response(Severity::Fatal, &code, &message)
            }
        }
    }
}

/// What a session's work needs and where it may look for it.
pub struct Checkout<'a> {
    pub ctx: &'a ProxyContext,
    pub user: &'a UserEntry,
    pub db: &'a DatabaseRoute,
    pub settings: &'a ClientSettings,
    pub pools: &'a mut NodePools,
}

/// A session's pools, one per shard node, looked up in the proxy's shared map once
/// rather than for every transaction.
#[derive(Default)]
pub struct NodePools {
    pools: HashMap<(usize, usize), (Pool<ServerConnector>, Arc<str>)>,
}

impl NodePools {
    fn get(
        &mut self,
        ctx: &ProxyContext,
        user: &UserEntry,
        db: &DatabaseRoute,
        shard: usize,
        node: NodeId,
    ) -> Result<(Pool<ServerConnector>, Arc<str>), CheckoutFailure> {
        if let Some(found) = self.pools.get(&(shard, node.0)) {
            return Ok(found.clone());
        }
        let target = ctx.target_on(user, db, shard, node).ok_or_else(|| {
            CheckoutFailure::Unavailable(format!("pgshard: shard {shard} is not configured"))
        })?;
        let entry = (ctx.pools.pool(&target, &user.pool), Arc::from(target.addr));
        self.pools.insert((shard, node.0), entry.clone());
        Ok(entry)
    }
}

impl Checkout<'_> {
    /// A server connection of `node` of `shard`, at the client's settings. `quick` waits
    /// no longer than a connect for a busy pool, for a caller with other nodes to try.
    pub async fn node(
        &mut self,
        shard: usize,
        node: NodeId,
        quick: bool,
    ) -> Result<PooledServer, CheckoutFailure> {
        // PAUSE holds every new checkout of the database until RESUME.
        self.db.admin.wait_while_paused().await;
        let (pool, addr) = self.pools.get(self.ctx, self.user, self.db, shard, node)?;
        let mut limits = self.user.pool.clone();
        if quick {
            limits.checkout_timeout = limits.checkout_timeout.min(limits.connect_timeout);
        }
        let started = Instant::now();
        let checkout = checkout_from(&pool, &limits, &addr, &self.ctx.pools.failures).await;
        self.db.stats.waits.record(started.elapsed());
        let mut server = match checkout {
            Ok(server) => server,
            Err(CheckoutError::TimedOut(addr)) => {
                return Err(CheckoutFailure::Unavailable(format!(
                    "pgshard: timed out waiting for a server connection to {addr}"
                )))
            }
            Err(CheckoutError::Server(e)) => {
                return Err(CheckoutFailure::Unavailable(format!("pgshard: {e}")))
            }
        };
        let wanted = self.settings.fingerprint();
        let current = server
            .applied_settings
            .unwrap_or_else(ClientSettings::server_default_fingerprint);
        if current != wanted {
            // A round trip to the server: its future is boxed rather than carried in
            // every session's.
            match Box::pin(server.run_quietly(&self.settings.replay_sql())).await {
                Ok(None) => server.applied_settings = Some(wanted),
                Ok(Some(error)) => {
                    // The server is fine and idle; its settings are not the client's.
                    server.applied_settings = None;
                    let (code, message) = messages::error_fields(&error);
                    tracing::info!(server = %addr, "the client's settings were refused: {code} {message}");
                    return Err(CheckoutFailure::Refused(error));
                }
                Err(e) => {
                    return Err(CheckoutFailure::Unavailable(format!(
                        "pgshard: server connection failed: {e}"
                    )))
                }
            }
        }
        Ok(server)
    }

    /// A server connection of `shard`'s primary. With failover on, a primary that is
    /// missing (being promoted) or failing its checks is waited for up to `hold_timeout`
    /// instead of failing at once.
    pub async fn primary(
        &mut self,
        shard: usize,
    ) -> Result<(NodeId, PooledServer), CheckoutFailure> {
        let failover = &self.db.config.failover;
        let hold = if failover.enabled {
            failover.hold_timeout
        } else {
            Duration::ZERO
        };
        let started = Instant::now();
        loop {
            let nodes = self.db.shards.get(shard).ok_or_else(|| {
                CheckoutFailure::Unavailable(format!("pgshard: shard {shard} is not configured"))
            })?;
            // During a hold, a primary that fails its health checks is not dialled: the
            // attempt could hang for connect_timeout while a new primary is promoted.
            let primary = nodes
                .primary()
                .filter(|&p| hold.is_zero() || !nodes.failing(p));
            let failure = match primary {
                Some(node) => match self.node(shard, node, false).await {
                    Ok(server) => {
                        if started.elapsed() > HOLD_POLL {
                            tracing::info!(primary = %server.addr, waited = ?started.elapsed(), "served after waiting for a primary");
                        }
                        return Ok((node, server));
                    }
                    Err(refused @ CheckoutFailure::Refused(_)) => return Err(refused),
                    Err(unavailable) => unavailable,
                },
                None => CheckoutFailure::Unavailable(
                    "pgshard: no primary is available (a failover is under way)".to_string(),
                ),
            };
            if started.elapsed() + HOLD_POLL > hold {
                return Err(failure);
            }
            tokio::time::sleep(HOLD_POLL).await;
        }
    }

    /// A server connection of the first of `nodes` (a read order of `shard`) that can be
    /// had. A node that cannot be reached is banned from reads and added to `tried`.
    pub async fn read(
        &mut self,
        shard: usize,
        nodes: Vec<NodeId>,
        tried: &mut Vec<NodeId>,
    ) -> Result<(NodeId, PooledServer), CheckoutFailure> {
        let mut failure = None;
        for node in nodes {
            match self.node(shard, node, false).await {
                Ok(server) => return Ok((node, server)),
                // The node works; the client's settings are the problem.
                Err(refused @ CheckoutFailure::Refused(_)) => return Err(refused),
                Err(unavailable) => {
                    self.db.shards[shard].ban(node);
                    tried.push(node);
                    failure = Some(unavailable);
                }
            }
        }
        Err(failure.unwrap_or_else(|| {
            CheckoutFailure::Unavailable(format!(
                "pgshard: no node of shard {shard} can serve this read now: the replicas are \
                 down, banned or lagging, and the primary may not serve it (primary_reads, or \
                 it just failed)"
            ))
        }))
    }
}
