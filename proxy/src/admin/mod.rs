//! The admin console: clients that log in to the virtual database `pgshard` (as one of
//! `proxy.admin_users`) talk to the proxy itself, in the simple query protocol, to see
//! its nodes, databases, pools, clients and server connections, to pause, disable or
//! reconnect a database and shut the proxy down (with PgBouncer's names), and to switch
//! a shard's primary over or force a promotion.

mod command;
mod control;
mod error;
mod promote;
mod reply;
mod show_clients;
mod show_databases;
mod show_lists;
mod show_nodes;
mod show_pools;
mod show_stats;
mod switchover;

use pgshard_failover::ShardControl;

use crate::context::ProxyContext;
use crate::net::messages::{self, error_response, tag};
use crate::net::{ClientStream, Connection, Frame, Severity, WireError};

pub use command::{parse, AdminCommand, ShardNode};
pub use error::AdminError;

/// Serves a logged-in admin client until it leaves or the proxy shuts down.
pub async fn serve_admin(ctx: &ProxyContext, mut conn: Connection<ClientStream>) {
    if greet(&mut conn).await.is_err() {
        return;
    }
    // After an extended-protocol message: the error is sent, the rest skipped until Sync.
    let mut skipping = false;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        // A command under way finishes; an idle console is closed when the proxy stops.
        let read = tokio::select! {
            read = conn.read_frame() => read,
            _ = shutdown.recv() => {
                let fatal = error_response(
                    Severity::Fatal,
                    "57P01",
                    "terminating connection due to administrator command",
                );
                let _ = conn.send(&fatal).await;
                return;
            }
        };
        let frame = match read {
            Ok(frame) => frame,
            Err(WireError::Closed) => return,
            Err(e) => {
                tracing::debug!("admin client connection failed: {e}");
                return;
            }
        };
        let frames = match frame.tag() {
            tag::TERMINATE => return,
            tag::QUERY => {
                let mut frames = answer(ctx, &frame).await;
                frames.push(messages::ready_for_query(b'I'));
                frames
            }
            tag::SYNC => {
                skipping = false;
                vec![messages::ready_for_query(b'I')]
            }
            _ if skipping => continue,
            _ => {
                skipping = true;
                vec![error_frame(&AdminError::ExtendedProtocol)]
            }
        };
        for frame in &frames {
            if conn.write_frame(frame).await.is_err() {
                return;
            }
        }
        if conn.flush().await.is_err() {
            return;
        }
    }
}

/// What a client expects after authentication; there is no server behind the console,
/// so the parameters are the proxy's own.
async fn greet(conn: &mut Connection<ClientStream>) -> Result<(), WireError> {
    let version = format!("{} (pgshard admin console)", env!("CARGO_PKG_VERSION"));
    for (name, value) in [
        ("server_version", version.as_str()),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
    ] {
        conn.write_frame(&messages::parameter_status(name, value))
            .await?;
    }
    conn.send(&messages::ready_for_query(b'I')).await
}

/// The reply to one simple query, up to (not including) ReadyForQuery.
async fn answer(ctx: &ProxyContext, frame: &Frame) -> Vec<Frame> {
    let text = match frame.reader().cstr_utf8() {
        Ok(text) => text.to_string(),
        Err(_) => return vec![error_frame(&AdminError::Unknown(String::new()))],
    };
    if text.trim().trim_end_matches(';').trim().is_empty() {
        return vec![Frame::new(tag::EMPTY_QUERY_RESPONSE, &[])];
    }
    let result = match parse(&text) {
        Ok(command) => run(ctx, &command).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => reply.frames(),
        Err(e) => {
            tracing::info!(command = %text.trim(), "admin command failed: {e}");
            vec![error_frame(&e)]
        }
    }
}

async fn run(ctx: &ProxyContext, command: &AdminCommand) -> Result<reply::Reply, AdminError> {
    match command {
        AdminCommand::ShowNodes => Ok(show_nodes::show_nodes(ctx)),
        AdminCommand::ShowDatabases => Ok(show_databases::show_databases(ctx)),
        AdminCommand::ShowPools => Ok(show_pools::show_pools(ctx)),
        AdminCommand::ShowClients => Ok(show_clients::show_clients(ctx)),
        AdminCommand::ShowServers => Ok(show_clients::show_servers(ctx)),
        AdminCommand::ShowLists => Ok(show_lists::show_lists(ctx)),
        AdminCommand::ShowVersion => Ok(show_lists::show_version()),
        AdminCommand::ShowStats => Ok(show_stats::show_stats(ctx)),
        AdminCommand::Pause(db) => control::pause(ctx, db.as_deref()).await,
        AdminCommand::Resume(db) => control::resume(ctx, db.as_deref()),
        AdminCommand::Reconnect(db) => control::reconnect(ctx, db.as_deref()),
        AdminCommand::Disable(db) => control::set_disabled(ctx, db, true),
        AdminCommand::Enable(db) => control::set_disabled(ctx, db, false),
        AdminCommand::WaitClose(db) => control::wait_close(ctx, db.as_deref()).await,
        AdminCommand::Kill(db) => control::kill(ctx, db),
        AdminCommand::Shutdown => Ok(control::shutdown(ctx)),
        AdminCommand::Switchover(node) => switchover::switchover(ctx, node).await,
        AdminCommand::ForcePromote(node) => promote::force_promote(ctx, node).await,
    }
}

/// The monitor of the shard an administrator named.
fn shard_control<'a>(
    ctx: &'a ProxyContext,
    node: &ShardNode,
) -> Result<&'a ShardControl, AdminError> {
    let db = ctx
        .databases
        .get(&node.database)
        .ok_or_else(|| AdminError::NoDatabase(node.database.clone()))?;
    db.controls.get(node.shard).ok_or(AdminError::NoShard {
        database: node.database.clone(),
        shard: node.shard,
        count: db.controls.len(),
    })
}

fn error_frame(e: &AdminError) -> Frame {
    error_response(Severity::Error, e.sqlstate(), &e.to_string())
}
