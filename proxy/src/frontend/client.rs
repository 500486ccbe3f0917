//! One client connection from accept to close.

use std::sync::Arc;

use tokio::net::TcpStream;

use super::admission::Admission;
use super::dump_client;
use super::engine::{serve, SessionCore};
use super::login::{fatal, login, Destination};
use super::session::Session;
use super::settings::ClientSettings;
use super::sharded::ShardedSession;
use crate::context::ProxyContext;
use crate::registry::ClientInfo;

/// Logs the client in and serves its session; `admission` is its place under the
/// client limits, held for as long as it is connected.
pub async fn serve_client(stream: TcpStream, ctx: Arc<ProxyContext>, mut admission: Admission) {
    let _ = stream.set_nodelay(true);
    let addr = stream.peer_addr().ok();
    // Boxed: a session's future keeps only what it needs while it waits, not the
    // login's state (a few kB for each of thousands of idle clients).
    let Some(mut logged_in) = Box::pin(login(stream, &ctx, &mut admission)).await else {
        return;
    };
    let database = match logged_in.destination {
        Destination::Database(database) => database,
        Destination::Admin => {
            tracing::info!(user = %logged_in.user.config.name, "admin console session");
            Box::pin(crate::admin::serve_admin(&ctx, logged_in.conn)).await;
            return;
        }
    };
    if database.planner.is_some() {
        if let Some(message) = dump_client::refusal(&logged_in.params, &database.config.name) {
            fatal(&mut logged_in.conn, "0A000", &message).await;
            return;
        }
    }
    let (pid, key, slot) = ctx.cancels.register();
    let settings = ClientSettings::from_startup(&logged_in.params);
    let planner = database.planner.clone();
    let info = ctx.clients.register(ClientInfo {
        user: logged_in.user.config.name.clone(),
        database: database.config.name.clone(),
        addr,
        connect_time: std::time::SystemTime::now(),
        tls: logged_in.conn.stream_mut().is_tls(),
        application_name: logged_in
            .params
            .iter()
            .find(|(name, _)| name == "application_name")
            .map(|(_, value)| value.clone())
            .unwrap_or_default(),
        active: Default::default(),
        kill: Arc::default(),
    });
    let mut core = SessionCore::new(
        ctx.clone(),
        logged_in.conn,
        logged_in.user,
        database,
        settings,
        slot,
    );
    core.info = Some(info);
    match planner {
        // Each boxed at its own size: a plain session's future is much smaller than a
        // sharded one's, and a task would otherwise hold the larger for every client.
        // The executor is boxed apart from the future that drives it, which borrows it:
        // a future owning its executor would hold it twice (the argument and the local).
        Some(planner) => {
            let mut session = Box::new(ShardedSession::new(core, planner));
            Box::pin(serve(&mut *session, pid, key)).await
        }
        None => {
            let mut session = Box::new(Session::new(core));
            Box::pin(serve(&mut *session, pid, key)).await
        }
    }
    ctx.cancels.unregister(pid, key);
}
