//! `SHOW POOLS`: every server pool made so far, as bb8 accounts for it (the same figures
//! as the `pgshard_pool_*` metrics).

use super::reply::{ColumnType, Reply};
use crate::context::ProxyContext;

pub fn show_pools(ctx: &ProxyContext) -> Reply {
    use ColumnType::{Int8, Text};
    let mut reply = Reply::new(
        "SHOW",
        &[
            ("server", Text),
            ("user", Text),
            ("database", Text),
            ("connections", Int8),
            ("idle", Int8),
            ("checkouts", Int8),
            ("waited", Int8),
            ("timed_out", Int8),
            ("created", Int8),
        ],
    );
    for (target, state) in ctx.pools.states() {
        let stats = &state.statistics;
        reply.rows.push(vec![
            Some(target.addr),
            Some(target.pool_user),
            Some(target.database),
            Some(state.connections.to_string()),
            Some(state.idle_connections.to_string()),
            Some((stats.get_direct + stats.get_waited).to_string()),
            Some(stats.get_waited.to_string()),
            Some(stats.get_timed_out.to_string()),
            Some(stats.connections_created.to_string()),
        ]);
    }
    reply
}
