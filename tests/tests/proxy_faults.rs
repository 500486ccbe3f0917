//! Faults on either side of the proxy: clients that vanish mid-transaction, servers that die
//! or drop off the network mid-query, and servers that are down when the proxy starts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pgshard_tests::wire::{self, RawConnection};
use pgshard_tests::{connect, sqlstate, wait_for, Cluster, Node, ProxyOptions, TestProxy, User};
use tokio_postgres::Client;

/// How soon a client must hear that its server is gone.
const PROMPTLY: Duration = Duration::from_secs(3);

/// How long a client waits for a server connection in these tests: with its server down,
/// a client is refused after this.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// One server connection, and a short wait for it. With one connection, the one a fault
/// breaks is the only one: no idle connection of the pool is left broken behind it.
fn options() -> ProxyOptions {
    ProxyOptions {
        pool_size: 1,
        checkout_timeout: CHECKOUT_TIMEOUT,
        ..ProxyOptions::default()
    }
}

/// Clients that logged in and ran a query, and now sit idle holding no server connection.
async fn idle_clients(proxy: &TestProxy, n: usize) -> Result<Vec<Client>> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let client = proxy.client(&User::app()).await?;
        client.batch_execute("SELECT 1").await?;
        clients.push(client);
    }
    Ok(clients)
}

/// Asserts that a new client is refused with 08006 within the checkout timeout (and a
/// margin), not left waiting.
async fn refused_promptly(proxy: &TestProxy) -> Result<()> {
    let tried_at = Instant::now();
    let error = connect(proxy.addr(), &User::app()).await.unwrap_err();
    assert_eq!(sqlstate(&error), Some("08006"), "{error}");
    let waited = tried_at.elapsed();
    assert!(
        waited < CHECKOUT_TIMEOUT + PROMPTLY,
        "the refusal took {waited:?}"
    );
    Ok(())
}

fn primary(cluster: &Cluster) -> &Node {
    cluster.shard(0).primary()
}

/// Waits until the primary runs `SELECT pg_sleep(…)` for some client.
async fn wait_sleeping(primary: &Node) -> Result<()> {
    let monitor = primary.client(&User::postgres()).await?;
    wait_for("the sleep to start", Duration::from_secs(10), || async {
        let running = monitor
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(%'",
                &[],
            )
            .await
            .ok()
            .map(|row| row.get::<_, i64>(0));
        Ok(running.filter(|n| *n > 0).map(|_| ()))
    })
    .await?;
    Ok(())
}

/// Runs `SELECT 1` through the proxy on a new client and on `existing` clients.
async fn served(proxy: &TestProxy, existing: &[Client]) -> Result<()> {
    let fresh = proxy.client(&User::app()).await.context("a new client")?;
    for (i, client) in std::iter::once(&fresh).chain(existing).enumerate() {
        let one: i32 = client
            .query_one("SELECT 1", &[])
            .await
            .with_context(|| format!("client {i}"))?
            .get(0);
        ensure!(one == 1);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_transaction_leaves_no_row_and_no_lock() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = primary(&cluster);
    primary
        .execute(
            "CREATE TABLE left_behind (id int); \
             CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)",
        )
        .await?;
    // One server connection: whoever comes next gets the very session the leaver used,
    // unless the proxy closed it.
    let proxy = TestProxy::start(
        primary,
        ProxyOptions {
            pool_size: 1,
            ..ProxyOptions::default()
        },
    )
    .await?;
    let open_transaction = "BEGIN; INSERT INTO left_behind VALUES (1); \
                            UPDATE counter SET n = n + 1 WHERE id = 1";

    // A driver that says goodbye (Terminate) in the middle of its transaction...
    let leaver = proxy.client(&User::app()).await?;
    leaver.batch_execute(open_transaction).await?;
    drop(leaver);
    let next = proxy.client(&User::app()).await?;
    next.batch_execute("SET lock_timeout = '5s'").await?;
    next.execute("UPDATE counter SET n = n + 10 WHERE id = 1", &[])
        .await
        .context("the row lock of the client that left is still held")?;

    // ...and one whose connection just drops.
    let (mut raw, _) = RawConnection::login(proxy.addr(), &User::app()).await?;
    raw.send_bytes(&wire::query(open_transaction)).await?;
    let replies = raw.read_until_ready().await?;
    let status = replies.last().map(|m| m.body.clone());
    assert_eq!(status, Some(b"T".to_vec()), "not inside a transaction");
    drop(raw);
    next.execute("UPDATE counter SET n = n + 100 WHERE id = 1", &[])
        .await
        .context("the row lock of the dropped connection is still held")?;

    let rows: i64 = next
        .query_one("SELECT count(*) FROM left_behind", &[])
        .await?
        .get(0);
    assert_eq!(rows, 0, "a transaction nobody committed left rows");
    assert_eq!(
        primary
            .query_one::<i32>("SELECT n FROM counter WHERE id = 1")
            .await?,
        110
    );
    let monitor = primary.client(&User::postgres()).await?;
    wait_for(
        "no session idle in transaction",
        Duration::from_secs(10),
        || async {
            let stuck = monitor
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
                    &[],
                )
                .await
                .ok()
                .map(|row| row.get::<_, i64>(0));
            Ok(stuck.filter(|n| *n == 0).map(|_| ()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_mid_query_fails_that_client_at_once_and_the_rest_go_on() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = primary(&cluster);
    let proxy = TestProxy::start(primary, options()).await?;
    let others = idle_clients(&proxy, 3).await?;
    let sleeper = proxy.client(&User::app()).await?;
    let sleep = tokio::spawn(async move { sleeper.query_one("SELECT pg_sleep(10)", &[]).await });
    wait_sleeping(primary).await?;

    let cut_at = Instant::now();
    primary.relay().cut().await?;
    let result = tokio::time::timeout(PROMPTLY, sleep)
        .await
        .context("the client was not told its server is gone")??;
    let error = result.expect_err("the query survived its server");
    assert_eq!(sqlstate(&error), Some("08006"), "{error}");
    assert!(cut_at.elapsed() < PROMPTLY);
    refused_promptly(&proxy).await?;

    primary.relay().heal().await?;
    served(&proxy, &others).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_the_running_query_and_clients_are_served_after_it_restarts(
) -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = primary(&cluster);
    primary
        .execute("CREATE TABLE survives (id int); INSERT INTO survives VALUES (1)")
        .await?;
    let proxy = TestProxy::start(primary, options()).await?;
    let others = idle_clients(&proxy, 3).await?;
    let sleeper = proxy.client(&User::app()).await?;
    let sleep = tokio::spawn(async move { sleeper.query_one("SELECT pg_sleep(10)", &[]).await });
    wait_sleeping(primary).await?;

    let killed_at = Instant::now();
    primary.kill().await?;
    let result = tokio::time::timeout(PROMPTLY, sleep)
        .await
        .context("the client was not told its server died")??;
    let error = result.expect_err("the query survived its server");
    assert_eq!(sqlstate(&error), Some("08006"), "{error}");
    assert!(killed_at.elapsed() < PROMPTLY);

    // While the server is down, a new client is refused with an error, not left waiting.
    refused_promptly(&proxy).await?;

    primary.start().await?;
    served(&proxy, &others).await?;
    let client = proxy.client(&User::app()).await?;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM survives", &[])
        .await?
        .get(0);
    assert_eq!(rows, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_starts_while_its_server_is_down_and_serves_once_it_is_up() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = primary(&cluster);

    // Nothing listens at all.
    let closed_port: SocketAddr = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.local_addr()?
    };
    let nowhere = TestProxy::start_at(closed_port, options()).await?;
    refused_promptly(&nowhere).await?;

    // The server comes up after the proxy.
    primary.relay().cut().await?;
    let proxy = TestProxy::start(primary, options()).await?;
    refused_promptly(&proxy).await?;
    primary.relay().heal().await?;
    served(&proxy, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pooled_connections_to_a_restarted_server_are_replaced_not_handed_out() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(
        primary(&cluster),
        ProxyOptions {
            pool_size: 3,
            ..ProxyOptions::default()
        },
    )
    .await?;
    // Three transactions at once leave three idle connections in the pool.
    let clients = idle_clients(&proxy, 3).await?;
    for c in &clients {
        c.batch_execute("BEGIN; SELECT 1").await?;
    }
    for c in &clients {
        c.batch_execute("COMMIT").await?;
    }
    drop(clients);
    // The server side of every pooled connection goes away.
    primary(&cluster).relay().cut().await?;
    primary(&cluster).relay().heal().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        let client = proxy.client(&User::app()).await?;
        let n: i32 = client
            .query_one("SELECT 1", &[])
            .await
            .with_context(|| format!("client {i}'s first query"))?
            .get(0);
        assert_eq!(n, 1);
    }
    proxy.shutdown().await;
    Ok(())
}
