//! TLS from the proxy to the servers: with `server_tls_mode = "require"` the sessions'
//! server connections and the control connections are encrypted (the servers'
//! `pg_stat_ssl` says so); `verify-full` refuses a certificate its CA did not sign;
//! `require` refuses a server without TLS, and `prefer` uses it in plaintext.

use std::time::Duration;

use anyhow::{ensure, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{
    connect, start_failover_proxy_tuned, wait_for, Cluster, ClusterOptions, TestCertificates, User,
};

/// postgresql.conf lines that turn TLS on with the image's self-signed certificate.
fn ssl_on() -> Vec<String> {
    vec![
        "ssl = on".to_string(),
        "ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'".to_string(),
        "ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'".to_string(),
    ]
}

/// A proxy with `server_tls` lines in `[proxy]`, in front of shard 0 of `cluster` (through
/// the relays), with failover on so that control connections run.
async fn start_proxy(cluster: &Cluster, server_tls: &str) -> Result<ProxyHandle> {
    Ok(start_failover_proxy_tuned(cluster, server_tls, "", "").await?)
}

/// The message of the error a login got (empty when it succeeded).
fn message<T>(result: &Result<T, tokio_postgres::Error>) -> String {
    match result {
        Ok(_) => String::new(),
        Err(e) => e
            .as_db_error()
            .map_or_else(|| e.to_string(), |db| db.message().to_string()),
    }
}

/// Whether the proxy's server connection for `sql`'s route is encrypted.
async fn session_is_encrypted(proxy: &ProxyHandle, hint: &str) -> Result<bool> {
    let client = connect(proxy.addr, &User::app()).await?;
    let sql = format!("{hint} SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    Ok(client.query_one(sql.as_str(), &[]).await?.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_connections_and_control_connections_use_tls() -> Result<()> {
    let options = ClusterOptions {
        replicas_per_shard: 1,
        extra_conf: ssl_on(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(options).await?;
    let proxy = start_proxy(&cluster, "server_tls_mode = \"require\"").await?;
    ensure!(
        session_is_encrypted(&proxy, "/* pgshard: role=primary */").await?,
        "the primary's server connection is not encrypted"
    );
    ensure!(
        session_is_encrypted(&proxy, "/* pgshard: role=replica */").await?,
        "the replica's server connection is not encrypted"
    );
    let primary = cluster.shard(0).primary();
    let control = "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
                   JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'pgshard control'";
    let client = primary
        .client(&User::new("postgres", "postgres", "app"))
        .await?;
    let (encrypted, all) = wait_for("control connections", Duration::from_secs(20), || async {
        let row = client.query_one(control, &[]).await.map_err(|e| {
            pgshard_tests::HarnessError::Proxy {
                action: "count control connections".to_string(),
                reason: e.to_string(),
            }
        })?;
        let (encrypted, all): (i64, i64) = (row.get(0), row.get(1));
        Ok((all > 0).then_some((encrypted, all)))
    })
    .await?;
    ensure!(
        encrypted == all,
        "{encrypted} of {all} control connections use TLS"
    );
    proxy.shutdown().await;

    // The image's certificate is self-signed: a CA of our own did not sign it.
    let certificates = TestCertificates::generate()?;
    let verify = format!(
        "server_tls_mode = \"verify-full\"\nserver_tls_ca = {:?}",
        certificates.ca()
    );
    let proxy = start_proxy(&cluster, &verify).await?;
    let refused = connect(proxy.addr, &User::app()).await;
    ensure!(
        message(&refused).contains("invalid peer certificate"),
        "verify-full accepted a certificate of another CA: {}",
        message(&refused)
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_or_used_in_plaintext() -> Result<()> {
    let options = ClusterOptions {
        replicas_per_shard: 1,
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(options).await?;
    let proxy = start_proxy(&cluster, "server_tls_mode = \"require\"").await?;
    let refused = connect(proxy.addr, &User::app()).await;
    ensure!(
        message(&refused).contains("does not accept TLS"),
        "require used a server without TLS: {}",
        message(&refused)
    );
    proxy.shutdown().await;

    let proxy = start_proxy(&cluster, "server_tls_mode = \"prefer\"").await?;
    ensure!(
        !session_is_encrypted(&proxy, "/* pgshard: role=primary */").await?,
        "a server without TLS reported an encrypted connection"
    );
    proxy.shutdown().await;
    Ok(())
}
