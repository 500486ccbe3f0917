//! SQL connections to any address the tests know: a node, a relay, the proxy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::user::User;

/// How long establishing the TCP connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a plain-text SQL connection to `addr` as `user`, with `application_name`
/// `pgshard-tests`, and drives it on a task of its own.
///
/// The timeout covers the TCP connect only: a peer that accepts and then never answers (a
/// blackholed relay) makes this wait until the caller's own timeout.
pub async fn connect(addr: SocketAddr, user: &User) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(&user.name)
        .password(&user.password)
        .dbname(&user.database)
        .application_name("pgshard-tests")
        .connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%addr, %error, "test connection ended");
        }
    });
    Ok(client)
}

/// The SQLSTATE of an error the server (or the proxy) reported; `None` for errors of the
/// connection itself.
pub fn sqlstate(error: &tokio_postgres::Error) -> Option<&str> {
    error.as_db_error().map(|db| db.code().code())
}
