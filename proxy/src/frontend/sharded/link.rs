//! A sharded session's server connection on one shard, and how it is checked out:
//! writes and transactions on the shard's primary (waiting out a failover), reads on a
//! replica as the read/write split chooses.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use bb8::Pool;

use crate::backend::pool::{checkout_from, ServerConnector};
use crate::backend::{CheckoutError, PooledServer};
use crate::context::{ProxyContext, UserEntry};
use crate::frontend::settings::ClientSettings;
use crate::net::messages;
use crate::routing::{DatabaseRoute, NodeId, NodeLease, ReadNeeds};

/// How often a write waiting for a primary looks again.
const HOLD_POLL: Duration = Duration::from_millis(100);

/// A checked-out server on one shard.
pub struct ShardLink {
    pub server: PooledServer,
    pub lease: NodeLease,
    /// The server is the shard's primary (writes may run on it).
    pub on_primary: bool,
    /// The session's transaction has been opened on it.
    pub in_transaction: bool,
}

/// A session's pools, one per shard node, looked up in the proxy's shared map once
/// rather than for every statement.
#[derive(Default)]
pub struct NodePools {
    pools: HashMap<(usize, usize), (Pool<ServerConnector>, String)>,
}

impl NodePools {
    fn get(
        &mut self,
        ctx: &ProxyContext,
        user: &UserEntry,
        db: &DatabaseRoute,
        shard: usize,
        node: NodeId,
    ) -> Result<(Pool<ServerConnector>, String), String> {
        if let Some(found) = self.pools.get(&(shard, node.0)) {
            return Ok(found.clone());
        }
        let target = ctx
            .target_on(user, db, shard, node)
            .ok_or_else(|| format!("pgshard: shard {shard} is not configured"))?;
        let entry = (ctx.pools.pool(&target, &user.pool), target.addr);
        self.pools.insert((shard, node.0), entry.clone());
        Ok(entry)
    }
}

/// What a statement needs from the server it runs on.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    Primary,
    Read(ReadNeeds),
}

/// Checks out a server on `shard` and brings it to the client's settings.
pub async fn checkout(
    ctx: &ProxyContext,
    user: &UserEntry,
    db: &DatabaseRoute,
    shard: usize,
    need: Need,
    settings: &ClientSettings,
    pools: &mut NodePools,
) -> Result<ShardLink, String> {
    let nodes = db
        .shards
        .get(shard)
        .ok_or_else(|| format!("pgshard: shard {shard} is not configured"))?;
    match need {
        Need::Primary => {
            let failover = &db.config.failover;
            let hold = if failover.enabled {
                failover.hold_timeout
            } else {
                Duration::ZERO
            };
            let started = Instant::now();
            loop {
                let primary = nodes
                    .primary()
                    .filter(|&p| hold.is_zero() || !nodes.failing(p));
                let error = match primary {
                    Some(node) => {
                        match connect(ctx, user, db, shard, node, settings, pools).await {
                            Ok(link) => return Ok(link),
                            Err(e) => e,
                        }
                    }
                    None => format!(
                        "pgshard: shard {shard} has no primary available (a failover is under way)"
                    ),
                };
                if started.elapsed() + HOLD_POLL > hold {
                    return Err(error);
                }
                tokio::time::sleep(HOLD_POLL).await;
            }
        }
        Need::Read(needs) => {
            let mut error = None;
            for node in nodes.read_order(needs, &[], true) {
                match connect(ctx, user, db, shard, node, settings, pools).await {
                    Ok(link) => return Ok(link),
                    Err(e) => {
                        nodes.ban(node);
                        error = Some(e);
                    }
                }
            }
            Err(error.unwrap_or_else(|| {
                format!("pgshard: no node of shard {shard} can serve this read now")
            }))
        }
    }
}

async fn connect(
    ctx: &ProxyContext,
    user: &UserEntry,
    db: &DatabaseRoute,
    shard: usize,
    node: NodeId,
    settings: &ClientSettings,
    pools: &mut NodePools,
) -> Result<ShardLink, String> {
    let nodes = &db.shards[shard];
    let (pool, addr) = pools.get(ctx, user, db, shard, node)?;
    let mut server = match checkout_from(&pool, &user.pool, &addr, &ctx.pools.failures).await {
        Ok(s) => s,
        Err(CheckoutError::TimedOut(addr)) => {
            return Err(format!(
                "pgshard: timed out waiting for a server connection to {addr}"
            ))
        }
        Err(CheckoutError::Server(e)) => return Err(format!("pgshard: {e}")),
    };
    let wanted = settings.fingerprint();
    let current = server
        .applied_settings
        .unwrap_or_else(ClientSettings::server_default_fingerprint);
    if current != wanted {
        match server.run_quietly(&settings.replay_sql()).await {
            Ok(None) => server.applied_settings = Some(wanted),
            Ok(Some(error)) => {
                server.applied_settings = None;
                return Err(messages::error_fields(&error).1);
            }
            Err(e) => return Err(format!("pgshard: server connection failed: {e}")),
        }
    }
    Ok(ShardLink {
        server,
        lease: nodes.lease(node),
        on_primary: nodes.primary() == Some(node),
        in_transaction: false,
    })
}
