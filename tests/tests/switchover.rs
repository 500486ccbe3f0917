//! The admin console on real replicated clusters: a switchover under a write load fails
//! no write and loses none, a forced promotion replaces a dead primary the safety rules
//! would not replace, and what is unsafe or unknown is refused with the session intact.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{
    admin_user, connect, failover_bed, missing_writes, primary_name, promoted_replicas, sqlstate,
    wait_for, wait_other_replica_follows, HarnessError, User, WriteLoad,
};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The rows of an admin command, as column name → value maps.
async fn admin(client: &Client, command: &str) -> Result<Vec<HashMap<String, String>>> {
    let messages = client
        .simple_query(command)
        .await
        .with_context(|| format!("admin command {command}"))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// The SQLSTATE and message an admin command fails with.
async fn admin_error(client: &Client, command: &str) -> Result<(String, String)> {
    match client.simple_query(command).await {
        Ok(_) => bail!("{command} succeeded"),
        Err(e) => Ok((
            sqlstate(&e).unwrap_or("").to_string(),
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default(),
        )),
    }
}

/// An admin command's failure while waiting for a condition: retried until the deadline.
fn not_yet(e: anyhow::Error) -> HarnessError {
    HarnessError::Proxy {
        action: "answer an admin command".to_string(),
        reason: format!("{e:#}"),
    }
}

async fn admin_client(proxy: &ProxyHandle) -> Result<Client> {
    Ok(connect(proxy.addr, &admin_user()).await?)
}

/// The role `SHOW NODES` gives the node at `addr`.
async fn role_of(client: &Client, addr: &str) -> Result<String> {
    let nodes = admin(client, "SHOW NODES").await?;
    let node = nodes
        .iter()
        .find(|n| n.get("address").map(String::as_str) == Some(addr))
        .with_context(|| format!("{addr} not in SHOW NODES"))?;
    Ok(node.get("role").cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_under_write_load_fails_no_write_and_loses_none() -> Result<()> {
    let (cluster, names, proxy) = failover_bed("").await?;
    let shard = cluster.shard(0);
    let target = shard.replica(0).proxy_addr().to_string();
    let console = admin_client(&proxy).await?;
    // Let the monitor see the replicas streaming first.
    wait_for(
        "the replica to be seen",
        Duration::from_secs(20),
        || async {
            Ok((role_of(&console, &target).await.map_err(not_yet)? == "replica").then_some(()))
        },
    )
    .await?;

    let load = WriteLoad::start(&proxy, 4);
    wait_for(
        "writes through the proxy",
        Duration::from_secs(20),
        || async { Ok((load.acknowledged() > 100).then_some(())) },
    )
    .await?;
    let rows = admin(&console, &format!("SWITCHOVER app 0 {target}")).await?;
    let row = rows.first().context("SWITCHOVER returned no row")?;
    let held_ms: u64 = row["writes_held_ms"].parse()?;
    eprintln!("switchover: {row:?}");
    ensure!(row["new_primary"] == target, "{row:?}");
    let old_rows: i64 = shard
        .primary()
        .query_one_i64("SELECT count(*) FROM ledger")
        .await?;
    let after = load.acknowledged();
    wait_for(
        "writes on the new primary",
        Duration::from_secs(30),
        || async { Ok((load.acknowledged() > after + 100).then_some(())) },
    )
    .await?;
    let outcome = load.stop().await?;
    eprintln!(
        "switchover: writes held {held_ms} ms; {} acknowledged, {} failed",
        outcome.acknowledged.len(),
        outcome.failed
    );
    ensure!(outcome.failed == 0, "{} writes failed", outcome.failed);

    // Every acknowledged write is on the new primary; the old one took none since.
    let primary = primary_name(&proxy, &names).await?;
    ensure!(primary == "s0-replica1", "writes go to {primary}");
    ensure!(promoted_replicas(&cluster).await? == vec![primary.clone()]);
    let lost = missing_writes(&cluster, &primary, &outcome.acknowledged).await?;
    ensure!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
    let old = shard.primary();
    ensure!(old.query_one_i64("SELECT count(*) FROM ledger").await? == old_rows);
    let read_only: String = old.query_one("SHOW default_transaction_read_only").await?;
    ensure!(read_only == "on", "the old primary is writable");
    let old_addr = old.proxy_addr().to_string();
    ensure!(role_of(&console, &old_addr).await? == "fenced primary");
    ensure!(role_of(&console, &target).await? == "primary");

    // The other replica follows the new primary.
    wait_other_replica_follows(&cluster, &primary).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_shows_nodes_and_refuses_what_is_unsafe() -> Result<()> {
    let app = User::new("app", "app", "pgshard");
    let (cluster, _, proxy) = failover_bed("").await?;
    let shard = cluster.shard(0);
    // Only admin users get in.
    match connect(proxy.addr, &app).await {
        Ok(_) => bail!("app opened the admin console"),
        Err(e) => ensure!(sqlstate(&e) == Some("42501"), "{e}"),
    }
    let console = admin_client(&proxy).await?;
    let primary = shard.primary().proxy_addr().to_string();
    let nodes = wait_for("every node to be seen", Duration::from_secs(20), || async {
        let nodes = admin(&console, "show nodes;").await.map_err(not_yet)?;
        let seen = nodes.iter().all(|n| n["reachable"] == "t");
        Ok(seen.then_some(nodes))
    })
    .await?;
    ensure!(nodes.len() == 3, "{nodes:?}");
    ensure!(nodes
        .iter()
        .all(|n| n["database"] == "app" && n["shard"] == "0"));
    ensure!(nodes
        .iter()
        .all(|n| n["banned"] == "f" && n["failures"] == "0"));
    ensure!(role_of(&console, &primary).await? == "primary");
    let databases = admin(&console, "SHOW DATABASES").await?;
    ensure!(
        databases.len() == 1 && databases[0]["state"] == "0: healthy",
        "{databases:?}"
    );

    // The pool a client used is shown.
    connect(proxy.addr, &User::app())
        .await?
        .simple_query("SELECT 1")
        .await?;
    let pools = admin(&console, "SHOW POOLS").await?;
    ensure!(
        pools
            .iter()
            .any(|p| p["user"] == "app" && p["checkouts"] != "0" && p["connections"] != "0"),
        "{pools:?}"
    );

    // Unknown commands and unsafe requests are refused; the session goes on.
    let (code, message) = admin_error(&console, "SHOW MEMS").await?;
    ensure!(
        code == "42601" && message.contains("SWITCHOVER"),
        "{message}"
    );
    let (code, message) = admin_error(&console, &format!("SWITCHOVER app 0 {primary}")).await?;
    ensure!(code == "55000", "{code}: {message}");
    let replica = shard.replica(0).proxy_addr().to_string();
    let (code, message) = admin_error(&console, &format!("PROMOTE app 0 {replica} FORCE")).await?;
    ensure!(code == "55000" && message.contains("alive"), "{message}");
    let (code, _) = admin_error(&console, "SWITCHOVER app 0 127.0.0.1:1").await?;
    ensure!(code == "42704");
    let (code, _) = admin_error(&console, &format!("SWITCHOVER nope 0 {replica}")).await?;
    ensure!(code == "3D000");
    ensure!(admin(&console, "SHOW DATABASES").await?.len() == 1);
    ensure!(promoted_replicas(&cluster).await?.is_empty());
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_too_far_behind_is_promoted_only_when_forced() -> Result<()> {
    let (cluster, names, proxy) = failover_bed("max_failover_lag = \"64kB\"").await?;
    let shard = cluster.shard(0);
    // The replicas stop streaming, then the primary writes about 2MB they never get.
    for replica in shard.replicas() {
        let superuser = replica.client(&User::postgres()).await?;
        // ALTER SYSTEM may not share a query string (an implicit transaction).
        superuser
            .batch_execute("ALTER SYSTEM SET primary_conninfo = ''")
            .await?;
        superuser.batch_execute("SELECT pg_reload_conf()").await?;
    }
    for replica in shard.replicas() {
        wait_for(
            "the WAL receiver to stop",
            Duration::from_secs(20),
            || async {
                let n: i64 = replica
                    .query_one_i64("SELECT count(*) FROM pg_stat_wal_receiver")
                    .await?;
                Ok((n == 0).then_some(()))
            },
        )
        .await?;
    }
    shard
        .primary()
        .execute("INSERT INTO ledger SELECT generate_series(1, 20000)")
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    shard.primary().kill().await?;

    let console = admin_client(&proxy).await?;
    wait_for("failover to refuse", Duration::from_secs(30), || async {
        let databases = admin(&console, "SHOW DATABASES").await.map_err(not_yet)?;
        let state = databases
            .first()
            .map(|d| d["state"].clone())
            .unwrap_or_default();
        Ok(state.contains("max_failover_lag").then_some(()))
    })
    .await?;
    ensure!(promoted_replicas(&cluster).await?.is_empty());

    let target = shard.replica(0).proxy_addr().to_string();
    let rows = admin(&console, &format!("PROMOTE app 0 {target} FORCE")).await?;
    eprintln!("forced promotion: {rows:?}");
    ensure!(rows.len() == 1 && rows[0]["new_primary"] == target);
    ensure!(promoted_replicas(&cluster).await? == vec!["s0-replica1".to_string()]);
    let writer = connect(proxy.addr, &User::app()).await?;
    writer
        .execute("INSERT INTO ledger VALUES (-1)", &[])
        .await
        .context("a write after the forced promotion")?;
    ensure!(primary_name(&proxy, &names).await? == "s0-replica1");
    proxy.shutdown().await;
    Ok(())
}
