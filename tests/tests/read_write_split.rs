//! Read/write splitting through the proxy on a real primary with two streaming replicas:
//! where statements run is observed with `inet_server_addr()`, which names the container
//! that answered.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{connect, wait_for, Cluster, Node, User};
use tokio_postgres::Client;

/// Starts a proxy in front of shard 0, its nodes reached through their relays.
async fn proxy(cluster: &Cluster, routing: &str) -> Result<ProxyHandle> {
    let shard = cluster.shard(0);
    let replicas: Vec<String> = shard
        .replicas()
        .iter()
        .map(|r| format!("\"{}\"", r.proxy_addr()))
        .collect();
    let toml = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
pool_size = 4
[[users]]
name = "app"
password = "app"
[[databases]]
name = "app"
[databases.routing]
health_check_interval = "100ms"
{routing}
[[databases.shards]]
primary = "{}"
replicas = [{}]
"#,
        shard.primary().proxy_addr(),
        replicas.join(", ")
    );
    let config = pgshard_config::parse(&toml, "read_write_split.toml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pgshard_proxy::start(config).await?)
}

/// The address each node answers `inet_server_addr()` with, by node name.
async fn server_addrs(cluster: &Cluster) -> Result<HashMap<String, String>> {
    let mut addrs = HashMap::new();
    for node in cluster.nodes() {
        addrs.insert(
            server_addr(&node.client(&User::app()).await?).await?,
            node.name().to_string(),
        );
    }
    Ok(addrs)
}

async fn server_addr(client: &Client) -> Result<String> {
    Ok(client
        .query_one("SELECT inet_server_addr()::text", &[])
        .await?
        .get(0))
}

/// Waits until the proxy's monitor has seen both replicas (reads reach them).
async fn wait_replicas_in_use(proxy: &ProxyHandle, names: &HashMap<String, String>) -> Result<()> {
    let client = connect(proxy.addr, &User::app()).await?;
    wait_for(
        "reads to reach both replicas",
        Duration::from_secs(20),
        || async {
            let mut seen = HashSet::new();
            for _ in 0..10 {
                let Ok(addr) = server_addr(&client).await else {
                    return Ok(None);
                };
                seen.insert(names.get(&addr).cloned().unwrap_or_default());
            }
            Ok((seen.contains("s0-replica1") && seen.contains("s0-replica2")).then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_and_writes_locks_and_transactions_to_the_primary() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let names = server_addrs(&cluster).await?;
    cluster
        .shard(0)
        .primary()
        .execute("CREATE TABLE items (id int PRIMARY KEY, n int); CREATE SEQUENCE ids")
        .await?;
    let proxy = proxy(&cluster, "").await?;
    wait_replicas_in_use(&proxy, &names).await?;
    let reader = connect(proxy.addr, &User::app()).await?;
    let where_ = |sql: &'static str| {
        let reader = &reader;
        let names = &names;
        async move {
            let row = reader.query_one(sql, &[]).await.context(sql)?;
            let addr: String = row.get(0);
            Ok::<_, anyhow::Error>(names.get(&addr).cloned().unwrap_or(addr))
        }
    };

    // Reads spread over both replicas and never reach the primary.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..20 {
        *counts
            .entry(where_("SELECT inet_server_addr()::text").await?)
            .or_default() += 1;
    }
    ensure!(
        !counts.contains_key("s0-primary"),
        "reads on the primary: {counts:?}"
    );
    ensure!(
        counts.get("s0-replica1") >= Some(&5) && counts.get("s0-replica2") >= Some(&5),
        "reads not spread over both replicas: {counts:?}"
    );

    // Writes, locking reads and sequence calls go to the primary.
    for sql in [
        "SELECT inet_server_addr()::text FROM (SELECT 1) s FOR UPDATE",
        "SELECT inet_server_addr()::text WHERE nextval('ids') > 0",
        "WITH w AS (INSERT INTO items VALUES (1, 1) RETURNING id) SELECT inet_server_addr()::text FROM w",
        "/* pgshard: role=primary */ SELECT inet_server_addr()::text",
    ] {
        let writer = connect(proxy.addr, &User::app()).await?;
        let row = writer.query_one(sql, &[]).await.context(sql)?;
        let addr: String = row.get(0);
        assert_eq!(names.get(&addr).map(String::as_str), Some("s0-primary"), "{sql}");
    }

    // A read-write transaction stays on the primary from BEGIN to COMMIT.
    let mut txn_client = connect(proxy.addr, &User::app()).await?;
    let txn = txn_client.transaction().await?;
    for _ in 0..5 {
        let addr: String = txn
            .query_one("SELECT inet_server_addr()::text", &[])
            .await?
            .get(0);
        assert_eq!(names.get(&addr).map(String::as_str), Some("s0-primary"));
    }
    txn.execute("INSERT INTO items VALUES (2, 2)", &[]).await?;
    txn.commit().await?;

    // BEGIN READ ONLY runs on one replica for the whole transaction.
    let ro = connect(proxy.addr, &User::app()).await?;
    ro.batch_execute("BEGIN READ ONLY").await?;
    let first = server_addr(&ro).await?;
    ensure!(
        names
            .get(&first)
            .is_some_and(|n| n.starts_with("s0-replica")),
        "BEGIN READ ONLY ran on {:?}",
        names.get(&first)
    );
    for _ in 0..5 {
        assert_eq!(server_addr(&ro).await?, first, "the transaction moved");
    }
    ro.batch_execute("COMMIT").await?;

    // A statement prepared once keeps working as its executions move between replicas.
    let stmt = reader
        .prepare("SELECT inet_server_addr()::text, $1::int + 1")
        .await?;
    let mut seen = HashSet::new();
    for i in 0..20 {
        let row = reader.query_one(&stmt, &[&i]).await?;
        let n: i32 = row.get(1);
        assert_eq!(n, i + 1);
        seen.insert(
            names
                .get(&row.get::<_, String>(0))
                .cloned()
                .unwrap_or_default(),
        );
    }
    ensure!(
        seen.contains("s0-replica1")
            && seen.contains("s0-replica2")
            && !seen.contains("s0-primary"),
        "prepared reads ran on {seen:?}"
    );

    // SET pgshard.role steers the session; SHOW answers from the proxy.
    reader.batch_execute("SET pgshard.role = 'primary'").await?;
    let shown = reader.simple_query("SHOW pgshard.role").await?;
    let shown = shown.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(shown.as_deref(), Some("primary"));
    assert_eq!(
        where_("SELECT inet_server_addr()::text").await?,
        "s0-primary"
    );
    reader.batch_execute("RESET pgshard.role").await?;
    ensure!(
        where_("SELECT inet_server_addr()::text")
            .await?
            .starts_with("s0-replica"),
        "RESET pgshard.role did not bring reads back to the replicas"
    );
    proxy.shutdown().await;
    Ok(())
}

/// Pauses WAL replay on a replica (as a superuser, directly).
async fn pause_replay(node: &Node) -> Result<()> {
    node.client(&User::postgres())
        .await?
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await?;
    Ok(())
}

async fn resume_replay(node: &Node) -> Result<()> {
    node.client(&User::postgres())
        .await?
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_write_while_replicas_are_paused() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let names = server_addrs(&cluster).await?;
    let shard = cluster.shard(0);
    shard
        .primary()
        .execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        .await?;
    // Let the table reach the replicas before replay stops.
    for replica in shard.replicas() {
        wait_for(
            "the table on the replica",
            Duration::from_secs(20),
            || async {
                let c = replica.client(&User::app()).await?;
                Ok(c.query_opt("SELECT 1 FROM notes", &[])
                    .await
                    .ok()
                    .map(|_| ()))
            },
        )
        .await?;
    }
    let proxy = proxy(&cluster, "").await?;
    wait_replicas_in_use(&proxy, &names).await?;
    for replica in shard.replicas() {
        pause_replay(replica).await?;
    }

    let client = connect(proxy.addr, &User::app()).await?;
    for id in 1..=20 {
        client
            .execute("INSERT INTO notes VALUES ($1, 'mine')", &[&id])
            .await?;
        let row = client
            .query_opt("SELECT body FROM notes WHERE id = $1", &[&id])
            .await?;
        ensure!(row.is_some(), "write {id} not visible to its own client");
    }
    // The replicas really are behind: read there directly, the rows are missing.
    let replica_rows = shard
        .replica(0)
        .query_one_i64("SELECT count(*) FROM notes")
        .await?;
    assert_eq!(replica_rows, 0, "replay was not paused");
    // Another client, which wrote nothing, reads from the (stale) replicas.
    let other = connect(proxy.addr, &User::app()).await?;
    let n: i64 = other
        .query_one("SELECT count(*) FROM notes", &[])
        .await?
        .get(0);
    assert_eq!(
        n, 0,
        "a client that did not write should read from a replica"
    );

    // Once replay resumes, the writer is served by replicas again.
    for replica in shard.replicas() {
        resume_replay(replica).await?;
    }
    wait_for(
        "the writer's reads to return to the replicas",
        Duration::from_secs(20),
        || async {
            let Ok(addr) = server_addr(&client).await else {
                return Ok(None);
            };
            Ok(names
                .get(&addr)
                .filter(|n| n.starts_with("s0-replica"))
                .map(|_| ()))
        },
    )
    .await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_a_read_loop_costs_no_failed_read() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let names = server_addrs(&cluster).await?;
    let proxy = proxy(&cluster, "").await?;
    wait_replicas_in_use(&proxy, &names).await?;
    let shard = cluster.shard(0);

    let mut handles = Vec::new();
    for _ in 0..4 {
        let addr = proxy.addr;
        handles.push(tokio::spawn(async move {
            let client = connect(addr, &User::app()).await?;
            let stmt = client.prepare("SELECT $1::int * 2").await?;
            let mut reads = 0u32;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
            while tokio::time::Instant::now() < deadline {
                let n: i32 = client.query_one(&stmt, &[&21]).await?.get(0);
                assert_eq!(n, 42);
                reads += 1;
            }
            Ok::<u32, anyhow::Error>(reads)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    shard.replica(0).kill().await?;
    let mut total = 0;
    for h in handles {
        total += h
            .await?
            .context("a read failed while a replica was killed")?;
    }
    ensure!(total > 100, "only {total} reads ran");

    // The dead replica gets nothing; the other one serves the reads.
    let client = connect(proxy.addr, &User::app()).await?;
    for _ in 0..10 {
        let addr = server_addr(&client).await?;
        assert_eq!(names.get(&addr).map(String::as_str), Some("s0-replica2"));
    }
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_gets_no_reads_until_it_catches_up() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let names = server_addrs(&cluster).await?;
    let shard = cluster.shard(0);
    let proxy = proxy(&cluster, "max_replica_lag = \"1MB\"").await?;
    wait_replicas_in_use(&proxy, &names).await?;

    pause_replay(shard.replica(0)).await?;
    shard
        .primary()
        .execute("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 30000) g")
        .await?;
    let reader = connect(proxy.addr, &User::app()).await?;
    // Once the monitor has seen the lag, every read goes to the replica that keeps up.
    wait_for(
        "reads to leave the lagging replica",
        Duration::from_secs(10),
        || async {
            let Ok(addr) = server_addr(&reader).await else {
                return Ok(None);
            };
            Ok((names.get(&addr).map(String::as_str) == Some("s0-replica2")).then_some(()))
        },
    )
    .await?;
    for _ in 0..20 {
        let addr = server_addr(&reader).await?;
        assert_eq!(names.get(&addr).map(String::as_str), Some("s0-replica2"));
    }

    resume_replay(shard.replica(0)).await?;
    wait_for(
        "reads to return to the caught-up replica",
        Duration::from_secs(20),
        || async {
            let Ok(addr) = server_addr(&reader).await else {
                return Ok(None);
            };
            Ok((names.get(&addr).map(String::as_str) == Some("s0-replica1")).then_some(()))
        },
    )
    .await?;
    proxy.shutdown().await;
    Ok(())
}
