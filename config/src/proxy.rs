//! The `[proxy]` table: how the proxy listens, pools and times out.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The virtual database clients of the admin console connect to.
pub const ADMIN_DATABASE: &str = "pgshard";

/// Process-wide settings; every field has a default, so `[proxy]` may be
/// left out entirely.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where clients connect; default `0.0.0.0:6432` (PgBouncer's port, so
    /// existing client settings keep working).
    #[serde(deserialize_with = "crate::address::deserialize_listen")]
    pub listen: SocketAddr,
    /// Default `transaction`; see [`PoolMode`].
    pub pool_mode: PoolMode,
    /// Server connections per node per (user, database); default 20, at least 1.
    pub pool_size: u32,
    /// Idle server connections kept open per pool; default 0, at most `pool_size`.
    pub min_pool_size: u32,
    /// Logged-in clients at most; beyond it a login is refused with SQLSTATE 53300.
    /// Default 10000.
    pub max_client_connections: usize,
    /// Connections still logging in at most (startup, TLS, password), on top of
    /// `max_client_connections`; beyond it a new connection is refused at once with
    /// SQLSTATE 53300, so silent or slow connections cannot take the clients' places.
    /// At least 1; by default see [`ProxyConfig::logins_in_progress_limit`].
    pub max_logins_in_progress: Option<usize>,
    /// Largest protocol message accepted, in bytes (written as a size such as
    /// `"64MB"`); bounds memory per connection. Default 64MB, from 1kB to 1GB.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_message_size: u64,
    /// Bytes of large client messages (1MB and more) all connections may hold at once;
    /// a client whose message would exceed it waits for room up to
    /// `message_memory_wait`, then is refused with SQLSTATE 53200. Bounds the proxy's
    /// memory as a whole rather than per connection. Default 256MB; at least
    /// `max_message_size`.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_message_memory: u64,
    /// How long a large message waits for room in `max_message_memory`; default 10s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub message_memory_wait: Duration,
    /// Largest startup packet or authentication message (password, SASL) accepted
    /// before login; a larger one is refused with SQLSTATE 08P01. Default 10000 bytes
    /// (PostgreSQL's startup packet limit), from 1kB to 1MB.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_login_message_size: u64,
    /// How long a connection may take to log in (PostgreSQL's
    /// `authentication_timeout`); default 15s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub client_login_timeout: Duration,
    /// What clients are asked for; default `scram-sha-256`.
    pub auth_method: AuthMethod,
    /// Connecting and authenticating to a server; default 2s. It bounds how long a
    /// client waits on a server that just died, before failover has noticed.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub connect_timeout: Duration,
    /// How long a client waits for a pooled server connection; default 5s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub checkout_timeout: Duration,
    /// Idle server connections are closed after it; default 10m.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub server_idle_timeout: Duration,
    /// Server connections are replaced after it, so server-side memory
    /// growth and stale DNS do not last forever; default 1h.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub server_lifetime: Duration,
    /// On SIGINT/SIGTERM, how long running transactions may finish; default 30s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub shutdown_timeout: Duration,
    /// Prepared statements cached per server connection; default 500.
    pub prepared_statements_limit: usize,
    /// Bytes of named prepared statements one client may keep (the proxy keeps each to
    /// prepare it again on other server connections); a Parse beyond it is refused with
    /// SQLSTATE 53200. Default 16MB, at least 1kB.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_prepared_statement_memory: u64,
    /// A tracing filter such as `"info"` or `"pgshard=debug"`; `RUST_LOG`
    /// overrides it.
    pub log_level: Option<String>,
    /// `[[users]]` names that may open the admin console (the virtual database
    /// `pgshard`); default none.
    pub admin_users: Vec<String>,
    /// PEM file of the certificate chain clients are shown; with `tls_private_key`, it
    /// turns TLS to clients on. Default none: SSLRequest is answered `N`.
    pub tls_certificate: Option<std::path::PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_private_key: Option<std::path::PathBuf>,
    /// Whether clients must use TLS; default `allow`. See [`TlsMode`].
    pub tls_mode: TlsMode,
    /// TLS to the servers, data and control connections alike; default `disable`.
    /// See [`ServerTlsMode`].
    pub server_tls_mode: ServerTlsMode,
    /// PEM file of the CA certificates a server's certificate must chain to (needed for
    /// `verify-full`).
    pub server_tls_ca: Option<std::path::PathBuf>,
    /// Where Prometheus scrapes `GET /metrics`; default none (off).
    #[serde(deserialize_with = "crate::address::deserialize_optional_listen")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ProxyConfig {
    /// Connections that may be logging in at once: `max_logins_in_progress`, by default
    /// a tenth of `max_client_connections` and at least 64, so that a burst of logins
    /// (an application starting its pool of connections) gets in while the places of
    /// connections that never log in stay bounded.
    pub fn logins_in_progress_limit(&self) -> usize {
        self.max_logins_in_progress
            .unwrap_or((self.max_client_connections / 10).max(64))
    }
}

/// How connections to the servers are encrypted; libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerTlsMode {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS or no connection, without checking the certificate.
    Require,
    /// TLS with a certificate that chains to `server_tls_ca` and names the host.
    VerifyFull,
}

/// Which client connections are accepted when TLS is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS for clients that ask for it (`sslmode=prefer`, libpq's default, or
    /// `require`); plain connections too.
    #[default]
    Allow,
    /// Only TLS: a plain login is refused with SQLSTATE 28000. Cancel requests, which
    /// carry no credentials, are accepted either way, as PostgreSQL does.
    Require,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 6432)),
            pool_mode: PoolMode::default(),
            pool_size: 20,
            min_pool_size: 0,
            max_client_connections: 10_000,
            max_logins_in_progress: None,
            max_message_size: 64 << 20,
            max_message_memory: 256 << 20,
            message_memory_wait: Duration::from_secs(10),
            max_login_message_size: 10_000,
            client_login_timeout: Duration::from_secs(15),
            auth_method: AuthMethod::default(),
            connect_timeout: Duration::from_secs(2),
            checkout_timeout: Duration::from_secs(5),
            server_idle_timeout: Duration::from_secs(10 * 60),
            server_lifetime: Duration::from_secs(60 * 60),
            shutdown_timeout: Duration::from_secs(30),
            prepared_statements_limit: 500,
            max_prepared_statement_memory: 16 << 20,
            log_level: None,
            admin_users: Vec::new(),
            tls_certificate: None,
            tls_private_key: None,
            tls_mode: TlsMode::default(),
            server_tls_mode: ServerTlsMode::default(),
            server_tls_ca: None,
            metrics_listen: None,
        }
    }
}

/// When a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// After each transaction: many clients share few server connections,
    /// but session state (SET, advisory locks, LISTEN) does not survive.
    #[default]
    Transaction,
    /// When the client disconnects: full session semantics, one server
    /// connection per client.
    Session,
}

/// The password authentication clients are asked to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AuthMethod {
    /// `scram-sha-256`: the password never crosses the wire; PostgreSQL's default.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// `md5`: for old clients without SCRAM support.
    #[serde(rename = "md5")]
    Md5,
    /// `cleartext`: only behind TLS or on trusted networks.
    #[serde(rename = "cleartext")]
    Cleartext,
}
