//! A sharded session's server connection on one shard, and how it is checked out:
//! writes and transactions on the shard's primary (waiting out a failover), reads on a
//! replica as the read/write split chooses.

use crate::backend::PooledServer;
use crate::frontend::checkout::{Checkout, CheckoutFailure};
use crate::routing::{NodeLease, ReadNeeds};

/// A checked-out server on one shard.
pub struct ShardLink {
    pub server: PooledServer,
    pub lease: NodeLease,
    /// The server is the shard's primary (writes may run on it).
    pub on_primary: bool,
    /// The session's transaction has been opened on it.
    pub in_transaction: bool,
    /// A statement classified as a write ran on it in this transaction: it is prepared
    /// at a two-phase commit without asking the server whether it wrote.
    pub wrote: bool,
}

/// What a statement needs from the server it runs on.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    Primary,
    Read(ReadNeeds),
}

/// Checks out a server on `shard` fit for `need`, at the client's settings.
pub async fn checkout(
    checkout: &mut Checkout<'_>,
    shard: usize,
    need: Need,
) -> Result<ShardLink, CheckoutFailure> {
    let (node, server) = match need {
        Need::Primary => checkout.primary(shard).await?,
        Need::Read(needs) => {
            let nodes = checkout.db.shards.get(shard).ok_or_else(|| {
                CheckoutFailure::Unavailable(format!("pgshard: shard {shard} is not configured"))
            })?;
            let order = nodes.read_order(needs, &[], true);
            checkout.read(shard, order, &mut Vec::new()).await?
        }
    };
    let nodes = &checkout.db.shards[shard];
    Ok(ShardLink {
        server,
        lease: nodes.lease(node),
        on_primary: nodes.primary() == Some(node),
        in_transaction: false,
        wrote: false,
    })
}
