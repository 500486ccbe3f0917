//! A pgshard proxy running inside the test process, in front of one node of a test cluster.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use pgshard_config::{AuthMethod, PoolMode};
use pgshard_proxy::ProxyHandle;

use crate::client::connect;
use crate::error::{HarnessError, Result};
use crate::node::Node;
use crate::user::User;

/// A user the proxy lets in, as a `[[users]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUser {
    pub name: String,
    /// Plaintext, or a `SCRAM-SHA-256$…` / `md5…` verifier.
    pub password: String,
    /// Needed when `password` is a verifier: what the proxy logs into the servers with.
    pub server_password: Option<String>,
}

impl ProxyUser {
    /// A user known to the proxy by the same name and plaintext password as on the servers.
    pub fn plain(user: &User) -> ProxyUser {
        ProxyUser {
            name: user.name.clone(),
            password: user.password.clone(),
            server_password: None,
        }
    }
}

/// How the proxy under test is configured. The defaults are pgshard's own, except that
/// the pool is small and the timeouts short, so that tests exercise sharing and fail fast.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub pool_mode: PoolMode,
    pub pool_size: u32,
    pub max_client_connections: u32,
    /// A size as the configuration takes it, e.g. `"1MB"`.
    pub max_message_size: String,
    pub auth_method: AuthMethod,
    pub connect_timeout: Duration,
    pub checkout_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// `[[users]]`; by default only `app`, as on the servers.
    pub users: Vec<ProxyUser>,
    /// More lines for `[proxy]` (e.g. TLS settings).
    pub proxy_extra: String,
    /// The one `[[databases]]` entry's name, the same on the servers; `app` by default.
    pub database: String,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            pool_mode: PoolMode::Transaction,
            pool_size: 4,
            max_client_connections: 10_000,
            max_message_size: "64MB".to_string(),
            auth_method: AuthMethod::ScramSha256,
            connect_timeout: Duration::from_secs(5),
            checkout_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            users: vec![ProxyUser::plain(&User::app())],
            proxy_extra: String::new(),
            database: User::app().database,
        }
    }
}

impl ProxyOptions {
    /// The configuration file for a proxy whose database (`app` unless `database` says
    /// otherwise) has its primary at `primary` and no replicas (every statement runs there).
    pub fn config_toml(&self, primary: SocketAddr) -> String {
        let pool_mode = match self.pool_mode {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        };
        let auth_method = match self.auth_method {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Cleartext => "cleartext",
        };
        let mut toml = format!(
            "[proxy]\n\
             listen = \"127.0.0.1:0\"\n\
             pool_mode = \"{pool_mode}\"\n\
             pool_size = {}\n\
             max_client_connections = {}\n\
             max_message_size = \"{}\"\n\
             auth_method = \"{auth_method}\"\n\
             connect_timeout = \"{}ms\"\n\
             checkout_timeout = \"{}ms\"\n\
             shutdown_timeout = \"{}ms\"\n\
             log_level = \"warn\"\n",
            self.pool_size,
            self.max_client_connections,
            self.max_message_size,
            self.connect_timeout.as_millis(),
            self.checkout_timeout.as_millis(),
            self.shutdown_timeout.as_millis(),
        );
        let _ = writeln!(toml, "{}", self.proxy_extra);
        for user in &self.users {
            let _ = write!(
                toml,
                "\n[[users]]\nname = {}\npassword = {}\n",
                toml_string(&user.name),
                toml_string(&user.password)
            );
            if let Some(server_password) = &user.server_password {
                let _ = writeln!(toml, "server_password = {}", toml_string(server_password));
            }
        }
        let _ = write!(
            toml,
            "\n[[databases]]\nname = {}\n\n[[databases.shards]]\nprimary = \"{primary}\"\n",
            toml_string(&self.database)
        );
        toml
    }
}

/// A proxy started in-process with [`pgshard_proxy::start`], listening on a free port of
/// 127.0.0.1. It runs on the test's runtime and goes away with it.
pub struct TestProxy {
    handle: ProxyHandle,
}

impl TestProxy {
    /// Starts a proxy in front of `node`, reached through the node's relay so that tests
    /// can cut the link.
    pub async fn start(node: &Node, options: ProxyOptions) -> Result<TestProxy> {
        TestProxy::start_at(node.proxy_addr(), options).await
    }

    /// Starts a proxy whose primary is `primary`, whatever listens there (or nothing).
    pub async fn start_at(primary: SocketAddr, options: ProxyOptions) -> Result<TestProxy> {
        let toml = options.config_toml(primary);
        let config = pgshard_config::parse(&toml, "test-proxy.toml").map_err(|errors| {
            HarnessError::Proxy {
                action: "parse the test configuration".to_string(),
                reason: format!("{errors}\n--- configuration ---\n{toml}"),
            }
        })?;
        let handle = pgshard_proxy::start(config)
            .await
            .map_err(|error| HarnessError::Proxy {
                action: "start".to_string(),
                reason: error.to_string(),
            })?;
        Ok(TestProxy { handle })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// Where it answers `GET /metrics`, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.handle.metrics_addr
    }

    /// Connections the proxy holds right now: clients logged in and connections logging in.
    pub fn clients(&self) -> usize {
        self.handle.clients()
    }

    /// Connections logging in right now.
    pub fn logins_in_progress(&self) -> usize {
        self.handle.logins_in_progress()
    }

    /// A SQL connection to the proxy as `user` (see [`connect`]).
    pub async fn client(&self, user: &User) -> Result<tokio_postgres::Client> {
        connect(self.addr(), user)
            .await
            .map_err(|source| HarnessError::Sql {
                node: format!("proxy {}", self.addr()),
                source,
            })
    }

    /// Every task of the proxy, to check that none is left once it has stopped.
    pub fn tasks(&self) -> pgshard_proxy::tasks::ProxyTasks {
        self.handle.tasks()
    }

    /// Stops the proxy gracefully: see [`ProxyHandle::shutdown`].
    pub async fn shutdown(self) {
        self.handle.shutdown().await
    }
}

impl std::fmt::Debug for TestProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProxy")
            .field("addr", &self.addr())
            .finish()
    }
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Starts a proxy in-process over every shard's primary of `cluster` (replicas unused),
/// as user `app`, sharding each `(table, column)` of `sharded_tables`, with server pools
/// of `pool_size` and transaction pooling.
pub async fn start_sharded_proxy(
    cluster: &crate::Cluster,
    sharded_tables: &[(&str, &str)],
    pool_size: u32,
) -> Result<ProxyHandle> {
    start_sharded_proxy_with(cluster, sharded_tables, pool_size, "").await
}

/// [`start_sharded_proxy`] with more `[proxy]` settings (TOML lines).
pub async fn start_sharded_proxy_with(
    cluster: &crate::Cluster,
    sharded_tables: &[(&str, &str)],
    pool_size: u32,
    proxy_settings: &str,
) -> Result<ProxyHandle> {
    let tables: Vec<(&str, &str, &str)> = sharded_tables
        .iter()
        .map(|&(table, column)| (table, column, "bigint"))
        .collect();
    let toml = sharded_proxy_toml(cluster, &tables, &[], pool_size).replacen(
        "[proxy]\n",
        &format!("[proxy]\n{proxy_settings}\n"),
        1,
    );
    start_proxy_toml(&toml, "sharded-proxy.toml").await
}

/// The configuration of a proxy over every shard's primary of `cluster` (replicas
/// unused), as user `app` with password `app`, listening on a free port of 127.0.0.1,
/// sharding each `(table, column, key type)` of `sharded_tables` and replicating
/// `replicated_tables`, with server pools of `pool_size` and transaction pooling.
pub fn sharded_proxy_toml(
    cluster: &crate::Cluster,
    sharded_tables: &[(&str, &str, &str)],
    replicated_tables: &[&str],
    pool_size: u32,
) -> String {
    let mut toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\npool_size = {pool_size}\n\
         [[users]]\nname = \"app\"\npassword = \"app\"\n\
         [[databases]]\nname = \"app\"\n"
    );
    let replicated: Vec<String> = replicated_tables.iter().map(|t| toml_string(t)).collect();
    let _ = writeln!(toml, "replicated_tables = [{}]", replicated.join(", "));
    for (table, column, key_type) in sharded_tables {
        let _ = write!(
            toml,
            "[[databases.sharded_tables]]\ntable = {}\ncolumn = {}\ntype = {}\n",
            toml_string(table),
            toml_string(column),
            toml_string(key_type)
        );
    }
    for shard in cluster.shards() {
        let _ = write!(
            toml,
            "[[databases.shards]]\nprimary = \"{}\"\n",
            shard.primary().proxy_addr()
        );
    }
    toml
}

/// Starts a proxy in-process from the configuration text `toml` (`origin` names it in
/// errors).
pub async fn start_proxy_toml(toml: &str, origin: &str) -> Result<ProxyHandle> {
    let config = pgshard_config::parse(toml, origin).map_err(|e| HarnessError::Proxy {
        action: format!("parse {origin}"),
        reason: e.to_string(),
    })?;
    pgshard_proxy::start(config)
        .await
        .map_err(|e| HarnessError::Proxy {
            action: "start".to_string(),
            reason: e.to_string(),
        })
}
