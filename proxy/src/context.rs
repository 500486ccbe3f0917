//! What every task of a running proxy shares.

use std::collections::HashMap;
use std::sync::Arc;

use pgshard_config::{Config, PoolMode, UserConfig};
use pgshard_failover::{NodeTls, ProbeCredentials, Tasks};
use pgshard_router::plan::{Planner, ShardSchema};
use rand::RngCore;

use crate::auth::ClientSecret;
use crate::backend::{PoolSettings, Pools, ServerTarget};
use crate::error::ProxyError;
use crate::frontend::admission::Admissions;
use crate::frontend::cancel::CancelRegistry;
use crate::frontend::statements::StatementRegistry;
use crate::routing::{DatabaseRoute, NodeId};
use crate::shutdown::Shutdown;
use crate::tasks::ProxyTasks;
use crate::two_phase::recovery::Login;

/// A configured user, with its secret parsed once and its effective pool settings.
pub struct UserEntry {
    pub config: UserConfig,
    pub secret: ClientSecret,
    pub pool_mode: PoolMode,
    pub pool: PoolSettings,
}

/// The proxy's shared state: configuration resolved for fast lookup, the pools, the
/// cancel keys, the shared statement names, the shutdown signal and the owner of every
/// task.
pub struct ProxyContext {
    pub config: Config,
    pub users: HashMap<String, Arc<UserEntry>>,
    pub databases: HashMap<String, Arc<DatabaseRoute>>,
    pub pools: Pools,
    pub cancels: CancelRegistry,
    pub statements: StatementRegistry,
    pub shutdown: Shutdown,
    /// Every task is spawned here, so that a shutdown can wait for it.
    pub tasks: ProxyTasks,
    /// The connections held: logging in, and logged in.
    pub admissions: Arc<Admissions>,
    /// The bytes of large client messages held at once (`max_message_memory`).
    pub message_budget: Arc<crate::net::MessageBudget>,
    /// Keys the fake SCRAM exchange for unknown users, so it looks like a real one.
    pub mock_key: [u8; 32],
    /// TLS for clients, when `[proxy]` has a certificate and key.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Every logged-in client session, for `SHOW CLIENTS`.
    pub clients: Arc<crate::registry::Registry<crate::registry::ClientInfo>>,
    /// The admin console's `SHUTDOWN`, heard by whoever runs the proxy.
    pub stop_requested: tokio::sync::Notify,
}

impl ProxyContext {
    pub fn new(
        config: Config,
        shutdown: Shutdown,
        tasks: ProxyTasks,
    ) -> Result<Arc<ProxyContext>, ProxyError> {
        let p = &config.proxy;
        // Checked first: a bad certificate stops the start before anything is spawned.
        let tls = match (&p.tls_certificate, &p.tls_private_key) {
            (Some(certificate), Some(key)) => Some(crate::net::tls::acceptor(certificate, key)?),
            _ => None,
        };
        let node_tls = NodeTls::from_settings(p.server_tls_mode, p.server_tls_ca.as_deref())
            .map_err(ProxyError::Config)?;
        let mut users = HashMap::new();
        for u in &config.users {
            let secret = ClientSecret::parse(&u.password)
                .map_err(|e| ProxyError::Config(format!("user \"{}\": password: {e}", u.name)))?;
            let pool = PoolSettings {
                size: u.pool_size.unwrap_or(p.pool_size),
                min_idle: p.min_pool_size,
                connect_timeout: p.connect_timeout,
                checkout_timeout: p.checkout_timeout,
                idle_timeout: p.server_idle_timeout,
                lifetime: p.server_lifetime,
                max_message_size: p.max_message_size as usize,
                statements_limit: p.prepared_statements_limit,
                server_tls: node_tls.clone(),
            };
            let entry = UserEntry {
                config: u.clone(),
                secret,
                pool_mode: u.pool_mode.unwrap_or(p.pool_mode),
                pool,
            };
            users.insert(u.name.clone(), Arc::new(entry));
        }
        let mut databases = HashMap::new();
        for d in &config.databases {
            let planner = if d.shards.len() > 1 {
                let schema = ShardSchema::new(d).map_err(|e| {
                    ProxyError::Config(format!("database \"{}\": sharding: {e}", d.name))
                })?;
                Some(Arc::new(Planner::new(schema, d.routing.parse_cache_size)))
            } else {
                None
            };
            let route = DatabaseRoute::start(
                d.clone(),
                monitor_credentials(&config, d, node_tls.clone(), tasks.for_database()),
                planner,
                config
                    .users
                    .iter()
                    .map(|u| Login {
                        user: u.server_user().to_string(),
                        password: u.server_password().map(str::to_string),
                    })
                    .collect(),
            );
            databases.insert(d.name.clone(), Arc::new(route));
        }
        let admissions = Admissions::new(p.max_client_connections, p.logins_in_progress_limit());
        let message_budget = Arc::new(crate::net::MessageBudget::new(
            p.max_message_memory,
            p.message_memory_wait,
        ));
        let mut mock_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut mock_key);
        Ok(Arc::new(ProxyContext {
            config,
            users,
            databases,
            pools: Pools::default(),
            cancels: CancelRegistry::default(),
            statements: StatementRegistry::default(),
            shutdown,
            tasks,
            admissions,
            message_budget,
            mock_key,
            tls,
            clients: Arc::default(),
            stop_requested: tokio::sync::Notify::new(),
        }))
    }

    /// Where a session connects for `node` of shard `shard`, as `user`.
    pub fn target_on(
        &self,
        user: &UserEntry,
        db: &DatabaseRoute,
        shard: usize,
        node: NodeId,
    ) -> Option<ServerTarget> {
        let nodes = db.shards.get(shard)?;
        Some(ServerTarget {
            addr: nodes.slot(node).addr.clone(),
            pool_user: user.config.name.clone(),
            user: user.config.server_user().to_string(),
            password: user.config.server_password().map(str::to_string),
            database: db.config.shard_database(shard).to_string(),
        })
    }
}

/// Control connections log in as `[databases.failover]`'s user when one is given (failover
/// needs a superuser), else as the first configured user with its server credentials,
/// which is enough for health and lag checks (with `pg_monitor`, replication details too).
/// The database's control-plane tasks are owned by `tasks`.
fn monitor_credentials(
    config: &Config,
    db: &pgshard_config::DatabaseConfig,
    tls: Option<NodeTls>,
    tasks: Tasks,
) -> ProbeCredentials {
    let database = db.server_database().to_string();
    if let Some(user) = &db.failover.user {
        return ProbeCredentials {
            user: user.clone(),
            password: db.failover.password.clone(),
            database,
            tls,
            tasks,
        };
    }
    let user = config.users.first();
    ProbeCredentials {
        user: user.map_or("postgres", |u| u.server_user()).to_string(),
        password: user.and_then(|u| u.server_password()).map(str::to_string),
        database,
        tls,
        tasks,
    }
}
