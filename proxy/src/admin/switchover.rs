//! `SWITCHOVER <database> <shard> <replica address>`: a chosen replica replaces the live
//! primary (see `pgshard_failover`'s switchover); the answer says what happened and how
//! long writes were held.

use pgshard_failover::CommandReport;

use super::command::ShardNode;
use super::error::AdminError;
use super::reply::{ColumnType, Reply};
use crate::context::ProxyContext;

pub async fn switchover(ctx: &ProxyContext, node: &ShardNode) -> Result<Reply, AdminError> {
    let control = super::shard_control(ctx, node)?;
    tracing::warn!(database = %node.database, shard = node.shard, replica = %node.address, "admin: switchover requested");
    let report = control.switchover(&node.address).await?;
    Ok(report_reply("SWITCHOVER", node, &report))
}

/// One row describing a promotion the admin console asked for.
pub fn report_reply(tag: &str, node: &ShardNode, report: &CommandReport) -> Reply {
    use ColumnType::{Int8, Text};
    let mut reply = Reply::new(
        tag,
        &[
            ("database", Text),
            ("shard", Int8),
            ("old_primary", Text),
            ("new_primary", Text),
            ("writes_held_ms", Int8),
            ("total_ms", Int8),
            ("old_primary_state", Text),
            ("replicas", Text),
        ],
    );
    reply.rows.push(vec![
        Some(node.database.clone()),
        Some(node.shard.to_string()),
        Some(report.old_primary.clone()),
        Some(report.new_primary.clone()),
        Some(report.writes_held.as_millis().to_string()),
        Some(report.total.as_millis().to_string()),
        Some(report.old_primary_state.clone()),
        Some(report.replicas_summary()),
    ]);
    reply
}
