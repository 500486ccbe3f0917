//! `SHOW CLIENTS` and `SHOW SERVERS`: the client sessions and server connections alive
//! now, with PgBouncer's column names where they apply.

use super::reply::{ColumnType, Reply};
use crate::context::ProxyContext;

pub fn show_clients(ctx: &ProxyContext) -> Reply {
    use ColumnType::{Int8, Text};
    let mut reply = Reply::new(
        "SHOW",
        &[
            ("type", Text),
            ("user", Text),
            ("database", Text),
            ("state", Text),
            ("addr", Text),
            ("port", Int8),
            ("connect_time", Text),
            ("tls", Text),
            ("application_name", Text),
        ],
    );
    for client in ctx.clients.entries() {
        reply.rows.push(vec![
            Some("C".to_string()),
            Some(client.user.clone()),
            Some(client.database.clone()),
            Some(state(client.active.is_active())),
            client.addr.map(|a| a.ip().to_string()),
            client.addr.map(|a| a.port().to_string()),
            Some(humantime::format_rfc3339_seconds(client.connect_time).to_string()),
            Some(tls(client.tls)),
            Some(client.application_name.clone()),
        ]);
    }
    reply
}

pub fn show_servers(ctx: &ProxyContext) -> Reply {
    use ColumnType::{Int8, Text};
    let mut reply = Reply::new(
        "SHOW",
        &[
            ("type", Text),
            ("user", Text),
            ("database", Text),
            ("state", Text),
            ("addr", Text),
            ("connect_time", Text),
            ("remote_pid", Int8),
            ("tls", Text),
        ],
    );
    for server in ctx.pools.servers.entries() {
        reply.rows.push(vec![
            Some("S".to_string()),
            Some(server.user.clone()),
            Some(server.database.clone()),
            Some(state(server.active.is_active())),
            Some(server.addr.clone()),
            Some(humantime::format_rfc3339_seconds(server.connect_time).to_string()),
            Some(server.pid.to_string()),
            Some(tls(server.tls)),
        ]);
    }
    reply
}

fn state(active: bool) -> String {
    if active { "active" } else { "idle" }.to_string()
}

fn tls(tls: bool) -> String {
    if tls { "yes" } else { "no" }.to_string()
}
