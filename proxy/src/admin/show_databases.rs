//! `SHOW DATABASES`: the configured databases, and where each shard stands.

use pgshard_failover::ShardPhase;

use super::reply::{bool_text, ColumnType, Reply};
use crate::context::ProxyContext;

pub fn show_databases(ctx: &ProxyContext) -> Reply {
    use ColumnType::{Bool, Int8, Text};
    let mut reply = Reply::new(
        "SHOW",
        &[
            ("database", Text),
            ("server_database", Text),
            ("shards", Int8),
            ("failover", Bool),
            ("state", Text),
        ],
    );
    let mut names: Vec<&String> = ctx.databases.keys().collect();
    names.sort();
    for name in names {
        let Some(db) = ctx.databases.get(name) else {
            continue;
        };
        let states: Vec<String> = db
            .shards
            .iter()
            .enumerate()
            .map(|(s, shard)| format!("{s}: {}", phase(&shard.topology.load().phase)))
            .collect();
        reply.rows.push(vec![
            Some(name.clone()),
            Some(db.config.server_database().to_string()),
            Some(db.shards.len().to_string()),
            bool_text(db.config.failover.enabled),
            Some(states.join(", ")),
        ]);
    }
    reply
}

fn phase(phase: &ShardPhase) -> String {
    match phase {
        ShardPhase::Healthy => "healthy".to_string(),
        ShardPhase::PrimaryUnreachable => "primary unreachable".to_string(),
        ShardPhase::Partitioned => "partitioned from the primary".to_string(),
        ShardPhase::FailingOver => "failing over".to_string(),
        ShardPhase::SwitchingOver => "switching over".to_string(),
        ShardPhase::NoPrimary(why) => format!("no primary: {why}"),
    }
}
