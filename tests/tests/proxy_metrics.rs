//! `GET /metrics`: Prometheus text with the clients, the server pools and the nodes, read
//! over plain HTTP from a running proxy; other requests get an error status and the proxy
//! keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_tests::{wait_for, Cluster, HarnessError, ProxyOptions, TestProxy, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` to `addr` and returns the whole response.
async fn http(addr: SocketAddr, request: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .context("no response")??;
    Ok(response)
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_clients_pools_and_nodes() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let options = ProxyOptions {
        proxy_extra: "metrics_listen = \"127.0.0.1:0\"".to_string(),
        ..ProxyOptions::default()
    };
    let primary = cluster.shard(0).primary();
    let proxy = TestProxy::start(primary, options).await?;
    let metrics_addr = proxy.metrics_addr().context("no metrics listener")?;

    let client = proxy.client(&User::app()).await?;
    client.simple_query("SELECT 1").await?;
    // The first is counted once the session's step ends, before it reads the second.
    client.simple_query("SELECT 1").await?;
    let scrape = "GET /metrics HTTP/1.1\r\nHost: pgshard\r\n\r\n";
    let response = http(metrics_addr, scrape).await?;
    ensure!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    ensure!(
        sample(&response, "pgshard_clients") == Some(1),
        "{response}"
    );
    let server = primary.proxy_addr().to_string();
    let pool = format!("{{server=\"{server}\",user=\"app\",database=\"app\"}}");
    let checkouts = sample(&response, &format!("pgshard_pool_checkouts_total{pool}"));
    ensure!(checkouts.is_some_and(|n| n >= 1), "{response}");
    ensure!(
        sample(&response, &format!("pgshard_pool_connections{pool}")).is_some_and(|n| n >= 1),
        "{response}"
    );
    // The database's traffic, with its latency histograms (OpenMetrics).
    ensure!(response.trim_end().ends_with("# EOF"), "{response}");
    let app = "{database=\"app\"}";
    ensure!(
        sample(&response, &format!("pgshard_queries_total{app}")).is_some_and(|n| n >= 1),
        "{response}"
    );
    ensure!(
        sample(
            &response,
            &format!("pgshard_query_duration_seconds_count{app}")
        )
        .is_some_and(|n| n >= 1),
        "{response}"
    );
    let all = sample(
        &response,
        "pgshard_query_duration_seconds_bucket{le=\"+Inf\",database=\"app\"}",
    );
    ensure!(all.is_some_and(|n| n >= 1), "{response}");
    ensure!(
        response.contains("# TYPE pgshard_transaction_duration_seconds histogram"),
        "{response}"
    );
    let node = format!("{{database=\"app\",shard=\"0\",address=\"{server}\"}}");
    ensure!(
        sample(&response, &format!("pgshard_node_primary{node}")) == Some(1),
        "{response}"
    );
    // The monitor's first check marks the node up.
    wait_for(
        "the node to be up in the metrics",
        Duration::from_secs(20),
        || async {
            let response = http(metrics_addr, scrape)
                .await
                .map_err(|e| HarnessError::Proxy {
                    action: "scrape".to_string(),
                    reason: e.to_string(),
                })?;
            Ok((sample(&response, &format!("pgshard_node_up{node}")) == Some(1)).then_some(()))
        },
    )
    .await?;

    // Other requests get an error status; the proxy goes on serving both ports.
    let other = http(metrics_addr, "GET / HTTP/1.1\r\n\r\n").await?;
    ensure!(other.starts_with("HTTP/1.1 404"), "{other}");
    let garbage = http(metrics_addr, "\u{1}\u{2}garbage\r\n\r\n").await?;
    ensure!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    drop(client);
    client_served(&proxy).await?;
    let response = http(metrics_addr, scrape).await?;
    ensure!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    proxy.shutdown().await;
    Ok(())
}

async fn client_served(proxy: &TestProxy) -> Result<()> {
    let client = proxy.client(&User::app()).await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}
