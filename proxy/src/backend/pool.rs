//! Pools of server connections, one per (node, user, database), on bb8.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bb8::{ManageConnection, Pool, PooledConnection, RunError};

use super::error::ServerError;
use super::server::{ServerConnection, ServerTarget};
use crate::registry::{Registry, ServerInfo};

/// How the pools' connections are made and bounded; from `[proxy]` and the user.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub size: u32,
    pub min_idle: u32,
    pub connect_timeout: Duration,
    pub checkout_timeout: Duration,
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub max_message_size: usize,
    pub statements_limit: usize,
    /// TLS to the servers (`[proxy] server_tls_mode`); `None`: plaintext.
    pub server_tls: Option<pgshard_failover::NodeTls>,
}

/// bb8's view of a server target: how to make a connection and when one is broken.
pub struct ServerConnector {
    target: ServerTarget,
    settings: PoolSettings,
    failures: ConnectFailures,
    servers: Arc<Registry<ServerInfo>>,
    /// Raised by `RECONNECT`: connections opened before are closed once released.
    generation: Arc<AtomicU64>,
}

/// Why the last connection to each server address could not be made. bb8 makes
/// connections on tasks of its own and keeps their errors from the waiting client, whose
/// checkout then only times out; this lets it hear why (a refused login, a failed TLS
/// handshake).
#[derive(Clone, Default)]
pub struct ConnectFailures(Arc<Mutex<HashMap<String, String>>>);

impl ConnectFailures {
    fn record(&self, addr: &str, failure: Option<String>) {
        let mut failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match failure {
            Some(reason) => {
                failures.insert(addr.to_string(), reason);
            }
            None => {
                failures.remove(addr);
            }
        }
    }

    /// The last failure to connect to `addr`, unless a connection succeeded since.
    pub fn last(&self, addr: &str) -> Option<String> {
        let failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(addr).cloned()
    }
}

impl ManageConnection for ServerConnector {
    /// Boxed: the pool moves a connection in and out of its idle list and through every
    /// checkout and return; a pointer moves for free, the connection's few hundred bytes
    /// would be copied each time.
    type Connection = Box<ServerConnection>;
    type Error = ServerError;

    async fn connect(&self) -> Result<Box<ServerConnection>, ServerError> {
        let result = ServerConnection::connect(
            &self.target,
            self.settings.connect_timeout,
            self.settings.max_message_size,
            self.settings.statements_limit,
            self.settings.server_tls.as_ref(),
        )
        .await;
        if let Err(e) = &result {
            tracing::warn!(server = %self.target.addr, user = %self.target.user, "cannot connect: {e}");
        }
        let failure = result.as_ref().err().map(ToString::to_string);
        self.failures.record(&self.target.addr, failure);
        let mut conn = Box::new(result?);
        conn.generation = self.generation.load(Ordering::Relaxed);
        conn.registration = Some(self.servers.register(ServerInfo {
            generation: conn.generation,
            pool_generation: self.generation.clone(),
            user: self.target.pool_user.clone(),
            database: self.target.database.clone(),
            addr: self.target.addr.clone(),
            pid: conn.pid,
            connect_time: SystemTime::now(),
            tls: conn.conn.stream_mut().is_tls(),
            active: Default::default(),
        }));
        Ok(conn)
    }

    /// A pooled connection whose server went away while it sat idle (restart, failover,
    /// network cut) is noticed here, without a round trip, and replaced.
    async fn is_valid(&self, conn: &mut Box<ServerConnection>) -> Result<(), ServerError> {
        if conn.generation != self.generation.load(Ordering::Relaxed) {
            return Err(ServerError::ConnectionLost(conn.addr.clone()));
        }
        if conn.conn.idle_and_open() {
            // Checked out now.
            conn.set_active(true);
            Ok(())
        } else {
            Err(ServerError::ConnectionLost(conn.addr.clone()))
        }
    }

    fn has_broken(&self, conn: &mut Box<ServerConnection>) -> bool {
        conn.set_active(false);
        // A connection handed back mid-transaction is never given to another client.
        conn.broken
            || conn.in_transaction()
            || conn.generation != self.generation.load(Ordering::Relaxed)
    }
}

/// A server connection checked out of its pool; returns there when dropped.
pub type PooledServer = PooledConnection<'static, ServerConnector>;

/// Why no server connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("timed out waiting for a server connection to {0}")]
    TimedOut(String),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Each server target's pool, and its `RECONNECT` generation.
type PoolMap = HashMap<ServerTarget, (Pool<ServerConnector>, Arc<AtomicU64>)>;

/// All pools of the proxy, created on first use so a server that is down at start-up
/// does not stop the proxy from starting.
#[derive(Clone, Default)]
pub struct Pools {
    pools: Arc<Mutex<PoolMap>>,
    pub failures: ConnectFailures,
    /// Every server connection the pools hold, for `SHOW SERVERS`.
    pub servers: Arc<Registry<ServerInfo>>,
}

impl Pools {
    /// Every pool made so far, with bb8's account of it, ordered by server, user and
    /// database (for metrics and `SHOW POOLS`).
    pub fn states(&self) -> Vec<(ServerTarget, bb8::State)> {
        let mut states: Vec<_> = self
            .lock()
            .iter()
            .map(|(target, (pool, _))| (target.clone(), pool.state()))
            .collect();
        states.sort_by(|(a, _), (b, _)| {
            (&a.addr, &a.pool_user, &a.database).cmp(&(&b.addr, &b.pool_user, &b.database))
        });
        states
    }

    pub fn pool(&self, target: &ServerTarget, settings: &PoolSettings) -> Pool<ServerConnector> {
        self.lock()
            .entry(target.clone())
            .or_insert_with(|| {
                let generation = Arc::new(AtomicU64::new(0));
                let pool = Pool::builder()
                    .max_size(settings.size.max(1))
                    .min_idle(Some(settings.min_idle.min(settings.size)))
                    .test_on_check_out(true)
                    .connection_timeout(settings.checkout_timeout)
                    .idle_timeout(Some(settings.idle_timeout))
                    .max_lifetime(Some(settings.lifetime))
                    .retry_connection(false)
                    .build_unchecked(ServerConnector {
                        target: target.clone(),
                        settings: settings.clone(),
                        failures: self.failures.clone(),
                        servers: self.servers.clone(),
                        generation: generation.clone(),
                    });
                (pool, generation)
            })
            .0
            .clone()
    }

    /// `RECONNECT`: every connection now open in the pools `which` picks is closed once
    /// no session uses it (an idle one at its next checkout), instead of being reused.
    /// How many pools that concerned.
    pub fn reconnect(&self, which: impl Fn(&ServerTarget) -> bool) -> usize {
        let pools: Vec<Pool<ServerConnector>> = self
            .lock()
            .iter()
            .filter(|(target, _)| which(target))
            .map(|(_, (pool, generation))| {
                generation.fetch_add(1, Ordering::Relaxed);
                pool.clone()
            })
            .collect();
        for pool in &pools {
            // A checkout tries the idle connections in turn, and closes each one that is
            // older: the idle ones go now, not at their next use.
            if pool.state().idle_connections > 0 {
                drop(futures::FutureExt::now_or_never(pool.get()));
            }
        }
        pools.len()
    }

    /// Server connections opened before a `RECONNECT` of their pool and not closed yet.
    pub fn outdated(&self, which: impl Fn(&ServerInfo) -> bool) -> usize {
        self.servers
            .entries()
            .iter()
            .filter(|s| which(s) && s.is_outdated())
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolMap> {
        match self.pools.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Checks out a connection of `pool` (whose server is `addr`).
pub async fn checkout_from(
    pool: &Pool<ServerConnector>,
    settings: &PoolSettings,
    addr: &str,
    failures: &ConnectFailures,
) -> Result<PooledServer, CheckoutError> {
    // An idle connection is handed over at the first poll, without timers. (Only then:
    // a checkout given up while the pool opens a connection for it would open another.)
    if pool.state().idle_connections > 0 {
        if let Some(result) = futures::FutureExt::now_or_never(pool.get_owned()) {
            match result {
                Ok(conn) => return Ok(conn),
                Err(RunError::User(e)) => return Err(CheckoutError::Server(e)),
                Err(RunError::TimedOut) => {}
            }
        }
    }
    // Waiting is the rare case: its future lives on the heap only while it waits, so
    // that every session's own future stays small.
    Box::pin(wait_for_server(pool, settings, addr, failures)).await
}

/// A checkout that waits for a connection to be returned or opened.
async fn wait_for_server(
    pool: &Pool<ServerConnector>,
    settings: &PoolSettings,
    addr: &str,
    failures: &ConnectFailures,
) -> Result<PooledServer, CheckoutError> {
    let state = pool.state();
    // With room in the pool and nothing idle, this checkout waits for a new connection:
    // bound it by connect_timeout, since bb8 lets a failed connect wait out the whole
    // checkout timeout (a dead server would hold clients for checkout_timeout).
    let connecting = state.idle_connections == 0 && state.connections < settings.size;
    // Otherwise bb8's own checkout timeout ends the wait (and is counted); this one only
    // backs it up.
    let bound = if connecting {
        settings.connect_timeout + Duration::from_millis(100)
    } else {
        settings.checkout_timeout + Duration::from_millis(100)
    };
    match tokio::time::timeout(bound, pool.get_owned()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(RunError::User(e))) => Err(CheckoutError::Server(e)),
        Ok(Err(RunError::TimedOut)) => Err(CheckoutError::TimedOut(addr.to_string())),
        Err(_) if connecting => Err(CheckoutError::Server(match failures.last(addr) {
            Some(reason) => ServerError::LastAttempt(reason),
            None => ServerError::ConnectTimeout(addr.to_string()),
        })),
        Err(_) => Err(CheckoutError::TimedOut(addr.to_string())),
    }
}
