//! `PROMOTE <database> <shard> <replica address> FORCE`: promotes the named replica of a
//! shard whose primary the detector declares dead, even when the failover safety rules
//! (`max_failover_lag`, synchronous standbys, `no_promote`) refuse it.

use super::command::ShardNode;
use super::error::AdminError;
use super::reply::Reply;
use super::switchover::report_reply;
use crate::context::ProxyContext;

pub async fn force_promote(ctx: &ProxyContext, node: &ShardNode) -> Result<Reply, AdminError> {
    let control = super::shard_control(ctx, node)?;
    tracing::warn!(database = %node.database, shard = node.shard, replica = %node.address, "admin: forced promotion requested");
    let report = control.force_promote(&node.address).await?;
    Ok(report_reply("PROMOTE", node, &report))
}
