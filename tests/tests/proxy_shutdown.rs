//! Graceful shutdown: no new clients, running transactions may finish, idle clients are
//! told `57P01`, and the proxy stops once they are gone or the timeout passes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pgshard_config::PoolMode;
use pgshard_tests::wire::{self, RawConnection};
use pgshard_tests::{wait_for, Cluster, Node, ProxyOptions, TestProxy, User};
use tokio::net::TcpStream;

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

async fn drain_in(primary: &Node, pool_mode: PoolMode) -> Result<()> {
    let table = format!("finished_{pool_mode:?}").to_lowercase();
    primary
        .execute(&format!("CREATE TABLE {table} (id int)"))
        .await?;
    let proxy = TestProxy::start(
        primary,
        ProxyOptions {
            pool_mode,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            ..ProxyOptions::default()
        },
    )
    .await?;
    let addr = proxy.addr();
    let busy = proxy.client(&User::app()).await?;
    busy.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES (1)"))
        .await?;
    let (mut idle, _) = RawConnection::login(addr, &User::app()).await?;

    let tasks = proxy.tasks();
    let started = Instant::now();
    let stopping = tokio::spawn(proxy.shutdown());

    let told = idle.read_until_closed().await?;
    assert_eq!(told.len(), 1, "{pool_mode:?}: {told:?}");
    assert_eq!(told[0].sqlstate().as_deref(), Some("57P01"));
    assert_eq!(told[0].field(b'S').as_deref(), Some("FATAL"));
    assert_eq!(
        told[0].field(b'M').as_deref(),
        Some("terminating connection due to administrator command")
    );

    wait_for(
        "the proxy to refuse new connections",
        Duration::from_secs(2),
        || async { Ok(TcpStream::connect(addr).await.err().map(|_| ())) },
    )
    .await?;

    // The transaction that was running goes on to its end.
    busy.execute(&format!("INSERT INTO {table} VALUES (2)"), &[])
        .await
        .context("a statement inside the open transaction")?;
    busy.batch_execute("COMMIT").await.context("COMMIT")?;
    assert_eq!(
        primary
            .query_one_i64(&format!("SELECT count(*) FROM {table}"))
            .await?,
        2,
        "{pool_mode:?}"
    );
    // Then that client is let go too, and the proxy stops without waiting for the timeout.
    wait_for(
        "the client to be disconnected",
        Duration::from_secs(2),
        || async { Ok(busy.is_closed().then_some(())) },
    )
    .await?;
    tokio::time::timeout(SHUTDOWN_TIMEOUT, stopping)
        .await
        .context("shutdown did not return")??;
    assert_eq!(tasks.running(), 0, "{pool_mode:?}: tasks left running");
    assert!(
        started.elapsed() < SHUTDOWN_TIMEOUT,
        "{pool_mode:?}: shutdown took {:?}, as if a client had been waited for",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_transactions_finish_and_tells_idle_clients_57p01() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = cluster.shard(0).primary();
    drain_in(primary, PoolMode::Transaction).await?;
    drain_in(primary, PoolMode::Session).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_a_transaction_after_the_timeout() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let timeout = Duration::from_secs(1);
    let proxy = TestProxy::start(
        cluster.shard(0).primary(),
        ProxyOptions {
            shutdown_timeout: timeout,
            ..ProxyOptions::default()
        },
    )
    .await?;
    let stuck = proxy.client(&User::app()).await?;
    stuck.batch_execute("BEGIN; SELECT 1").await?;
    let (mut raw, _) = RawConnection::login(proxy.addr(), &User::app()).await?;
    raw.send_bytes(&wire::query("BEGIN")).await?;
    raw.read_until_ready().await?;

    let tasks = proxy.tasks();
    let started = Instant::now();
    let stopping = tokio::spawn(proxy.shutdown());
    // Still in its transaction at the deadline: told 57P01 as PostgreSQL tells it, then
    // disconnected, rather than cut off with a bare end of stream.
    let told = raw.read_until_closed().await?;
    let told_after = started.elapsed();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].sqlstate().as_deref(), Some("57P01"));
    assert_eq!(told[0].field(b'S').as_deref(), Some("FATAL"));
    assert!(
        told_after >= timeout,
        "told after {told_after:?}, before the timeout"
    );
    tokio::time::timeout(timeout * 5, stopping)
        .await
        .context("shutdown did not return after its timeout")??;
    let took = started.elapsed();
    assert!(
        took >= timeout,
        "shutdown returned after {took:?}, before its timeout, with a transaction open"
    );
    assert_eq!(tasks.running(), 0, "tasks left running");
    wait_for(
        "the other client to be disconnected",
        Duration::from_secs(2),
        || async { Ok(stuck.is_closed().then_some(())) },
    )
    .await?;
    Ok(())
}
