//! `SHOW STATS`: each database's traffic since the proxy started, with PgBouncer's
//! column names (totals, and averages over the whole time in µs) and percentiles.

use std::sync::atomic::Ordering;

use super::reply::{ColumnType, Reply};
use crate::context::ProxyContext;

pub fn show_stats(ctx: &ProxyContext) -> Reply {
    use ColumnType::{Int8, Text};
    let mut reply = Reply::new(
        "SHOW",
        &[
            ("database", Text),
            ("total_xact_count", Int8),
            ("total_query_count", Int8),
            ("total_received", Int8),
            ("total_sent", Int8),
            ("total_xact_time", Int8),
            ("total_query_time", Int8),
            ("total_wait_time", Int8),
            ("avg_xact_time", Int8),
            ("avg_query_time", Int8),
            ("avg_wait_time", Int8),
            ("p50_query_time", Int8),
            ("p99_query_time", Int8),
            ("p99_xact_time", Int8),
        ],
    );
    let mut names: Vec<&String> = ctx.databases.keys().collect();
    names.sort();
    for name in names {
        let Some(db) = ctx.databases.get(name) else {
            continue;
        };
        let stats = &db.stats;
        let values = [
            stats.transactions.count(),
            stats.queries.count(),
            stats.received.load(Ordering::Relaxed),
            stats.sent.load(Ordering::Relaxed),
            stats.transactions.total_us(),
            stats.queries.total_us(),
            stats.waits.total_us(),
            stats.transactions.average_us(),
            stats.queries.average_us(),
            stats.waits.average_us(),
            stats.queries.percentile_us(50),
            stats.queries.percentile_us(99),
            stats.transactions.percentile_us(99),
        ];
        let mut row = vec![Some(name.clone())];
        row.extend(values.iter().map(|v| Some(v.to_string())));
        reply.rows.push(row);
    }
    reply
}
