//! `SHOW LISTS` (how many of each thing the proxy holds, as PgBouncer counts them) and
//! `SHOW VERSION`.

use super::reply::{ColumnType, Reply};
use crate::context::ProxyContext;

pub fn show_lists(ctx: &ProxyContext) -> Reply {
    let mut reply = Reply::new(
        "SHOW",
        &[("list", ColumnType::Text), ("items", ColumnType::Int8)],
    );
    let clients = ctx.clients.entries();
    let servers = ctx.pools.servers.entries();
    let used_clients = clients.iter().filter(|c| c.active.is_active()).count();
    let used_servers = servers.iter().filter(|s| s.active.is_active()).count();
    let lists = [
        ("databases", ctx.databases.len()),
        ("users", ctx.users.len()),
        ("pools", ctx.pools.states().len()),
        ("free_clients", clients.len() - used_clients),
        ("used_clients", used_clients),
        ("login_clients", ctx.admissions.logins()),
        ("free_servers", servers.len() - used_servers),
        ("used_servers", used_servers),
    ];
    for (list, items) in lists {
        reply
            .rows
            .push(vec![Some(list.to_string()), Some(items.to_string())]);
    }
    reply
}

pub fn show_version() -> Reply {
    let mut reply = Reply::new("SHOW", &[("version", ColumnType::Text)]);
    reply
        .rows
        .push(vec![Some(format!("pgshard {}", env!("CARGO_PKG_VERSION")))]);
    reply
}
