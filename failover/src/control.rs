//! Control connections: tokio-postgres sessions the control plane opens to nodes, in
//! plaintext or TLS as `[proxy] server_tls_mode` says.

use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use crate::node_tls::NodeTls;
use crate::postgres_tls::MakeRustlsConnect;

use crate::error::ProbeError;
use crate::tasks::Tasks;

/// What the control plane needs to reach a shard's nodes: the credentials of its control
/// connections, their TLS, and where the shard's control-plane tasks are owned.
#[derive(Debug, Clone)]
pub struct ProbeCredentials {
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub tls: Option<NodeTls>,
    /// The shard's monitor, the tasks driving its control connections and the jobs it
    /// starts are spawned here, so that a stopping proxy ends them and waits for them.
    pub tasks: Tasks,
}

/// Opens a control connection to `addr` (`host:port`, `[v6]:port`) and drives it on a
/// task of its own, owned by `credentials.tasks`.
pub async fn connect(
    addr: &str,
    credentials: &ProbeCredentials,
    timeout: Duration,
) -> Result<Client, ProbeError> {
    let (host, port) = split_addr(addr);
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(&credentials.user)
        .dbname(&credentials.database)
        .application_name("pgshard control")
        .connect_timeout(timeout);
    if let Some(password) = &credentials.password {
        config.password(password);
    }
    let timed_out = || ProbeError::TimedOut {
        addr: addr.to_string(),
        timeout_ms: timeout.as_millis(),
    };
    let failed = |source| ProbeError::Connect {
        addr: addr.to_string(),
        source,
    };
    let node = addr.to_string();
    match &credentials.tls {
        None => {
            let connecting = tokio::time::timeout(timeout, config.connect(NoTls));
            let (client, connection) =
                connecting.await.map_err(|_| timed_out())?.map_err(failed)?;
            credentials.tasks.spawn_stoppable(drive(connection, node));
            Ok(client)
        }
        Some(tls) => {
            config.ssl_mode(if tls.required() {
                SslMode::Require
            } else {
                SslMode::Prefer
            });
            let connecting =
                tokio::time::timeout(timeout, config.connect(MakeRustlsConnect(tls.clone())));
            let (client, connection) =
                connecting.await.map_err(|_| timed_out())?.map_err(failed)?;
            credentials.tasks.spawn_stoppable(drive(connection, node));
            Ok(client)
        }
    }
}

/// Runs a control connection until it ends.
async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(
    connection: F,
    node: String,
) {
    if let Err(e) = connection.await {
        tracing::debug!(%node, "control connection ended: {e}");
    }
}

/// `host:port` or `[v6]:port` into its parts; the config has validated the form.
pub fn split_addr(addr: &str) -> (&str, u16) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "5432"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port.parse().unwrap_or(5432))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        assert_eq!(split_addr("db1:6543"), ("db1", 6543));
        assert_eq!(split_addr("[::1]:5432"), ("::1", 5432));
        assert_eq!(split_addr("10.0.0.1:5432"), ("10.0.0.1", 5432));
    }
}
