//! TLS between clients and the proxy: libpq (psql) verifies the proxy's certificate and
//! runs queries over TLS; plain clients are served or refused as `tls_mode` says; bytes
//! slipped in before the handshake are refused, and the proxy keeps serving.

use std::time::Duration;

use anyhow::{ensure, Result};
use pgshard_tests::wire::{self, RawConnection};
use pgshard_tests::{
    run_tool, Cluster, ProxyOptions, TestCertificates, TestProxy, ToolOutput, User,
};

const LIMIT: Duration = Duration::from_secs(30);

/// A proxy in front of `cluster`'s primary with TLS from `certificates` in `mode`.
async fn tls_proxy(
    cluster: &Cluster,
    certificates: &TestCertificates,
    mode: &str,
) -> Result<TestProxy> {
    let options = ProxyOptions {
        proxy_extra: format!(
            "tls_certificate = {:?}\ntls_private_key = {:?}\ntls_mode = \"{mode}\"",
            certificates.certificate(),
            certificates.key()
        ),
        ..ProxyOptions::default()
    };
    Ok(TestProxy::start(cluster.shard(0).primary(), options).await?)
}

/// psql through `proxy` with the libpq connection options `conninfo`: a query, then
/// `\conninfo`, which tells whether the connection is encrypted.
async fn psql(proxy: &TestProxy, conninfo: &str) -> Result<ToolOutput> {
    let dsn = format!("dbname=app {conninfo}");
    Ok(run_tool(
        "psql",
        proxy.addr(),
        &User::app(),
        &[
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &dsn,
            "-c",
            "SELECT 'served' || ' over ' || 'pgshard'",
            "-c",
            "\\conninfo",
        ],
        LIMIT,
    )
    .await?)
}

fn verified(certificates: &TestCertificates) -> String {
    format!(
        "sslmode=verify-full sslrootcert={}",
        certificates.ca().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_verify_the_proxy_and_run_queries_over_tls() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let certificates = TestCertificates::generate()?;
    let proxy = tls_proxy(&cluster, &certificates, "allow").await?;

    let out = psql(&proxy, &verified(&certificates)).await?;
    ensure!(
        out.status.success(),
        "verify-full failed:\n{}",
        out.describe()
    );
    ensure!(
        out.stdout.contains("served over pgshard") && out.stdout.contains("SSL connection"),
        "not a query answered over TLS:\n{}",
        out.describe()
    );

    // With tls_mode = "allow", a client that does not ask for TLS is served in plaintext.
    let out = psql(&proxy, "sslmode=disable").await?;
    ensure!(
        out.status.success(),
        "plaintext failed:\n{}",
        out.describe()
    );
    ensure!(
        out.stdout.contains("served over pgshard") && !out.stdout.contains("SSL connection"),
        "{}",
        out.describe()
    );

    // A client that trusts another CA (of the same name) does not connect.
    let other = TestCertificates::generate()?;
    let out = psql(&proxy, &verified(&other)).await?;
    ensure!(
        !out.status.success() && out.stderr.contains("SSL error"),
        "a certificate from an unknown CA was accepted:\n{}",
        out.describe()
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_plaintext_logins_and_stuffed_handshakes() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let certificates = TestCertificates::generate()?;
    let proxy = tls_proxy(&cluster, &certificates, "require").await?;

    let out = psql(&proxy, "sslmode=disable").await?;
    ensure!(
        !out.status.success() && out.stderr.contains("pgshard accepts only TLS connections"),
        "a plaintext login was not refused:\n{}",
        out.describe()
    );

    // Bytes sent right behind the SSLRequest, before the proxy's answer, would pass for
    // bytes sent under TLS: refused with 08P01.
    let mut raw = RawConnection::connect(proxy.addr()).await?;
    let mut stuffed = wire::ssl_request();
    stuffed.extend(wire::startup_packet(&[
        ("user", "app"),
        ("database", "app"),
    ]));
    raw.send_bytes(&stuffed).await?;
    let replies = raw.read_until_closed().await?;
    ensure!(
        replies
            .iter()
            .any(|m| m.sqlstate().as_deref() == Some("08P01")),
        "data stuffed before the TLS handshake was not refused: {replies:?}"
    );

    // The proxy still serves TLS clients.
    let out = psql(&proxy, &verified(&certificates)).await?;
    ensure!(
        out.status.success() && out.stdout.contains("SSL connection"),
        "TLS after the refusals:\n{}",
        out.describe()
    );
    proxy.shutdown().await;
    Ok(())
}
