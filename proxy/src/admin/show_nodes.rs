//! `SHOW NODES`: every node of every shard as the monitor last saw it.

use pgshard_failover::{NodeRole, ShardTopology};

use super::reply::{bool_text, ColumnType, Reply};
use crate::context::ProxyContext;
use crate::routing::NodeId;

pub fn show_nodes(ctx: &ProxyContext) -> Reply {
    use ColumnType::{Bool, Int8, Text};
    let mut reply = Reply::new(
        "SHOW",
        &[
            ("database", Text),
            ("shard", Int8),
            ("address", Text),
            ("role", Text),
            ("reachable", Bool),
            ("lag_bytes", Int8),
            ("timeline", Int8),
            ("failures", Int8),
            ("banned", Bool),
        ],
    );
    let mut names: Vec<&String> = ctx.databases.keys().collect();
    names.sort();
    for name in names {
        let Some(db) = ctx.databases.get(name) else {
            continue;
        };
        for (s, shard) in db.shards.iter().enumerate() {
            let topology = shard.topology.load();
            for (i, node) in topology.nodes.iter().enumerate() {
                let lag = (topology.primary != Some(i))
                    .then(|| topology.lag_bytes(i))
                    .flatten();
                reply.rows.push(vec![
                    Some(name.clone()),
                    Some(s.to_string()),
                    Some(node.addr.clone()),
                    Some(role(&topology, i).to_string()),
                    bool_text(node.reachable),
                    lag.map(|l| l.to_string()),
                    node.timeline.map(|t| t.to_string()),
                    Some(node.failures.to_string()),
                    bool_text(shard.is_banned(NodeId(i))),
                ]);
            }
        }
    }
    reply
}

/// The node's role as the monitor sees it: the shard's primary, a replica, a fenced
/// primary (an old primary on an older timeline), or not known yet.
fn role(t: &ShardTopology, i: usize) -> &'static str {
    let node = &t.nodes[i];
    match node.role {
        _ if t.primary == Some(i) => "primary",
        Some(NodeRole::Primary) if node.fenced => "fenced primary",
        Some(NodeRole::Primary) => "primary (not in use)",
        Some(NodeRole::Replica) => "replica",
        None => "unknown",
    }
}
