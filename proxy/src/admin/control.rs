//! The console's commands that change what clients get, with PgBouncer's names:
//! `PAUSE`/`RESUME` (hold new transactions), `DISABLE`/`ENABLE` (refuse new clients),
//! `RECONNECT` (replace server connections once released), `WAIT_CLOSE` (wait for that),
//! `KILL` (end a database's clients) and `SHUTDOWN`.

use std::time::{Duration, Instant};

use super::error::AdminError;
use super::reply::Reply;
use crate::context::ProxyContext;
use crate::routing::DatabaseRoute;

/// How often `PAUSE` looks whether the database's server connections are all released.
const PAUSE_POLL: Duration = Duration::from_millis(20);

/// The databases a command names: one, or all when none is named.
fn databases<'a>(
    ctx: &'a ProxyContext,
    name: Option<&str>,
) -> Result<Vec<&'a DatabaseRoute>, AdminError> {
    match name {
        Some(name) => match ctx.databases.get(name) {
            Some(db) => Ok(vec![db.as_ref()]),
            None => Err(AdminError::NoDatabase(name.to_string())),
        },
        None => {
            let mut all: Vec<&DatabaseRoute> = ctx.databases.values().map(|d| d.as_ref()).collect();
            all.sort_by(|a, b| a.config.name.cmp(&b.config.name));
            Ok(all)
        }
    }
}

/// Server connections of `db` checked out by a session now.
fn servers_in_use(ctx: &ProxyContext, db: &DatabaseRoute) -> usize {
    ctx.pools
        .servers
        .entries()
        .iter()
        .filter(|s| s.active.is_active() && db.serves(&s.addr, &s.database))
        .count()
}

/// `PAUSE [db]`: new transactions wait (clients stay connected); returns once every
/// server connection of the databases is released, or fails after `shutdown_timeout`
/// saying how many are still in use (the databases stay paused).
pub async fn pause(ctx: &ProxyContext, name: Option<&str>) -> Result<Reply, AdminError> {
    let dbs = databases(ctx, name)?;
    for db in &dbs {
        db.admin.set_paused(true);
    }
    let deadline = Instant::now() + ctx.config.proxy.shutdown_timeout;
    loop {
        let in_use: usize = dbs.iter().map(|db| servers_in_use(ctx, db)).sum();
        if in_use == 0 {
            return Ok(Reply::command("PAUSE"));
        }
        if Instant::now() >= deadline {
            return Err(AdminError::Refused(format!(
                "{in_use} server connection(s) are still in use after shutdown_timeout; new \
                 transactions stay held until RESUME"
            )));
        }
        tokio::time::sleep(PAUSE_POLL).await;
    }
}

/// `RESUME [db]`: held transactions go on.
pub fn resume(ctx: &ProxyContext, name: Option<&str>) -> Result<Reply, AdminError> {
    for db in databases(ctx, name)? {
        db.admin.set_paused(false);
    }
    Ok(Reply::command("RESUME"))
}

/// `DISABLE db` / `ENABLE db`: new clients of the database are refused (or let in
/// again); clients already in stay.
pub fn set_disabled(ctx: &ProxyContext, name: &str, disabled: bool) -> Result<Reply, AdminError> {
    for db in databases(ctx, Some(name))? {
        db.admin.set_disabled(disabled);
    }
    Ok(Reply::command(if disabled { "DISABLE" } else { "ENABLE" }))
}

/// `RECONNECT [db]`: every server connection of the databases open now is closed once
/// released (an idle one at its next checkout) and replaced by a new one.
pub fn reconnect(ctx: &ProxyContext, name: Option<&str>) -> Result<Reply, AdminError> {
    let dbs = databases(ctx, name)?;
    ctx.pools.reconnect(|target| {
        dbs.iter()
            .any(|db| db.serves(&target.addr, &target.database))
    });
    Ok(Reply::command("RECONNECT"))
}

/// `WAIT_CLOSE [db]`: returns once every server connection a `RECONNECT` left to close
/// is closed, or fails after `shutdown_timeout` saying how many are still in use.
pub async fn wait_close(ctx: &ProxyContext, name: Option<&str>) -> Result<Reply, AdminError> {
    let dbs = databases(ctx, name)?;
    let deadline = Instant::now() + ctx.config.proxy.shutdown_timeout;
    loop {
        let left = ctx
            .pools
            .outdated(|s| dbs.iter().any(|db| db.serves(&s.addr, &s.database)));
        if left == 0 {
            return Ok(Reply::command("WAIT_CLOSE"));
        }
        if Instant::now() >= deadline {
            return Err(AdminError::Refused(format!(
                "{left} server connection(s) to close are still in use after shutdown_timeout"
            )));
        }
        tokio::time::sleep(PAUSE_POLL).await;
    }
}

/// `KILL db`: every client of the database is disconnected now (told `57P01`, its
/// transaction rolled back, the server connections it held closed), and the database's
/// other server connections are replaced as by `RECONNECT`. New clients may connect.
pub fn kill(ctx: &ProxyContext, name: &str) -> Result<Reply, AdminError> {
    let db = databases(ctx, Some(name))?;
    for client in ctx.clients.entries() {
        if client.database == name {
            client.kill.kill();
        }
    }
    ctx.pools.reconnect(|target| {
        db.iter()
            .any(|db| db.serves(&target.addr, &target.database))
    });
    Ok(Reply::command("KILL"))
}

/// `SHUTDOWN`: the proxy shuts down as on SIGTERM.
pub fn shutdown(ctx: &ProxyContext) -> Reply {
    ctx.stop_requested.notify_one();
    Reply::command("SHUTDOWN")
}
