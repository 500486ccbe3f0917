//! Automatic failover through the proxy on real replicated clusters: a killed, stopped or
//! frozen primary is replaced by its most advanced replica, writes carry on, the old
//! primary is fenced when it returns, a dying replica only moves reads, and a proxy merely
//! cut off from the primary promotes nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{
    connect, failover_bed, failover_bed_with, missing_writes, prepare_ledger, primary_name,
    promoted_replicas, start_failover_proxy as proxy, wait_for, wait_other_replica_follows,
    Cluster, ClusterOptions, User, WriteLoad,
};

/// How the primary is taken down.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL: it dies without shutting down.
    Kill,
    /// `docker stop`: a clean (fast) shutdown.
    Stop,
    /// SIGSTOP: it freezes with its connections open.
    Pause,
}

/// Takes the primary down under a write load and waits until writes are acknowledged
/// again; returns the load (still running), the time writes took to resume, and the new
/// primary's name.
async fn break_primary_under_load(
    cluster: &Cluster,
    proxy: &ProxyHandle,
    names: &HashMap<String, String>,
    fault: Fault,
) -> Result<(WriteLoad, Duration, String)> {
    let load = WriteLoad::start(proxy, 3);
    wait_for(
        "writes through the proxy",
        Duration::from_secs(20),
        || async { Ok((load.acknowledged() > 50).then_some(())) },
    )
    .await?;
    let primary = cluster.shard(0).primary();
    match fault {
        Fault::Kill => primary.kill().await?,
        Fault::Stop => primary.stop().await?,
        Fault::Pause => primary.pause().await?,
    }
    let broken = Instant::now();
    let before = load.acknowledged();
    wait_for(
        "writes to resume on a new primary",
        Duration::from_secs(60),
        || async { Ok((load.acknowledged() > before + 50).then_some(())) },
    )
    .await?;
    let resumed = broken.elapsed();
    let primary = primary_name(proxy, names).await?;
    Ok((load, resumed, primary))
}

/// Writes through the proxy reach `primary` only, and reads never reach `fenced`.
async fn only_the_new_primary_is_used(
    proxy: &ProxyHandle,
    names: &HashMap<String, String>,
    primary: &str,
    fenced: &str,
) -> Result<()> {
    let client = connect(proxy.addr, &User::app()).await?;
    for i in 0..20i64 {
        let row = client
            .query_one(
                "INSERT INTO ledger (id) VALUES ($1) RETURNING inet_server_addr()::text",
                &[&(-1 - i)],
            )
            .await?;
        let addr: String = row.get(0);
        ensure!(
            names.get(&addr).map(String::as_str) == Some(primary),
            "a write reached {addr}, not the new primary {primary}"
        );
        let reader = connect(proxy.addr, &User::app()).await?;
        let addr: String = reader
            .query_one("SELECT inet_server_addr()::text", &[])
            .await?
            .get(0);
        ensure!(
            names.get(&addr).map(String::as_str) != Some(fenced),
            "a read reached the fenced node"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_fenced_when_it_returns() -> Result<()> {
    let (cluster, names, proxy) = failover_bed("").await?;
    let (load, resumed, primary) =
        break_primary_under_load(&cluster, &proxy, &names, Fault::Kill).await?;
    eprintln!("failover: writes resumed {resumed:?} after the primary was killed, on {primary}");
    ensure!(
        primary.starts_with("s0-replica"),
        "writes went to {primary}"
    );
    let outcome = load.stop().await?;
    ensure!(!outcome.acknowledged.is_empty());
    eprintln!(
        "failover: {} writes acknowledged, {} failed",
        outcome.acknowledged.len(),
        outcome.failed
    );

    // Exactly one replica was promoted; the other streams from it.
    assert_eq!(promoted_replicas(&cluster).await?, vec![primary.clone()]);
    wait_other_replica_follows(&cluster, &primary).await?;

    // The old primary comes back as a primary on the old timeline: it gets no traffic.
    let shard = cluster.shard(0);
    shard.primary().start().await?;
    shard.primary().wait_ready(Duration::from_secs(60)).await?;
    ensure!(
        !shard.primary().is_in_recovery().await?,
        "the old primary came back as a standby"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    only_the_new_primary_is_used(&proxy, &names, &primary, "s0-primary").await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_primary_is_replaced_without_losing_a_write() -> Result<()> {
    let (cluster, names, proxy) = failover_bed("").await?;
    let (load, resumed, primary) =
        break_primary_under_load(&cluster, &proxy, &names, Fault::Stop).await?;
    let outcome = load.stop().await?;
    eprintln!(
        "stopped primary: writes resumed {resumed:?} after docker stop, on {primary}; {} \
         acknowledged, {} failed",
        outcome.acknowledged.len(),
        outcome.failed
    );
    assert_eq!(promoted_replicas(&cluster).await?, vec![primary.clone()]);
    // A clean shutdown sends the replicas all the WAL first: nothing acknowledged is lost.
    let lost = missing_writes(&cluster, &primary, &outcome.acknowledged).await?;
    ensure!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_is_replaced_and_fenced_when_it_thaws() -> Result<()> {
    // Replicas stop counting as witnesses once their WAL receiver times out.
    let options = ClusterOptions {
        replicas_per_shard: 2,
        extra_conf: vec!["wal_receiver_timeout = 3s".to_string()],
        ..ClusterOptions::default()
    };
    let (cluster, names, proxy) = failover_bed_with(options, "").await?;
    let (load, resumed, primary) =
        break_primary_under_load(&cluster, &proxy, &names, Fault::Pause).await?;
    let outcome = load.stop().await?;
    eprintln!(
        "frozen primary: writes resumed {resumed:?} after SIGSTOP, on {primary}; {} \
         acknowledged, {} failed",
        outcome.acknowledged.len(),
        outcome.failed
    );
    assert_eq!(promoted_replicas(&cluster).await?, vec![primary.clone()]);
    // Thawed, the old primary still believes it is one: it must get no traffic.
    cluster.shard(0).primary().unpause().await?;
    ensure!(
        !cluster.shard(0).primary().is_in_recovery().await?,
        "the old primary thawed as a standby"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    only_the_new_primary_is_used(&proxy, &names, &primary, "s0-primary").await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_replica_moves_reads_and_promotes_nothing() -> Result<()> {
    let (cluster, names, proxy) = failover_bed("").await?;
    let load = WriteLoad::start(&proxy, 2);
    wait_for(
        "writes through the proxy",
        Duration::from_secs(20),
        || async { Ok((load.acknowledged() > 50).then_some(())) },
    )
    .await?;
    let shard = cluster.shard(0);
    shard.replica(0).kill().await?;
    let before = load.acknowledged();
    // Reads run on the surviving replica, including those whose first choice was the
    // dead one (they run again elsewhere).
    let reader = connect(proxy.addr, &User::app()).await?;
    for _ in 0..30 {
        let addr: String = reader
            .query_one("SELECT inet_server_addr()::text", &[])
            .await?
            .get(0);
        let name = names.get(&addr).cloned().unwrap_or(addr);
        ensure!(name == "s0-replica2", "a read went to {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past the failure threshold many times over: still no failover.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcome = load.stop().await?;
    eprintln!(
        "dying replica: {} writes acknowledged, {} after the kill, {} failed",
        outcome.acknowledged.len(),
        outcome.acknowledged.len() - before,
        outcome.failed
    );
    ensure!(outcome.failed == 0, "{} writes failed", outcome.failed);
    ensure!(
        outcome.acknowledged.len() > before + 50,
        "writes did not go on"
    );
    ensure!(
        shard.replica(1).is_in_recovery().await?,
        "the surviving replica was promoted"
    );
    ensure!(primary_name(&proxy, &names).await? == "s0-primary");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_synchronous_replication_no_acknowledged_write_is_lost() -> Result<()> {
    let options = ClusterOptions {
        replicas_per_shard: 2,
        synchronous: true,
        ..ClusterOptions::default()
    };
    let (cluster, names, proxy) = failover_bed_with(options, "").await?;
    let (load, resumed, primary) =
        break_primary_under_load(&cluster, &proxy, &names, Fault::Kill).await?;
    let outcome = load.stop().await?;
    eprintln!(
        "synchronous failover: writes resumed after {resumed:?} on {primary}; {} acknowledged",
        outcome.acknowledged.len()
    );
    let lost = missing_writes(&cluster, &primary, &outcome.acknowledged).await?;
    ensure!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cut_off_from_the_primary_promotes_nothing() -> Result<()> {
    let (cluster, names, proxy) = failover_bed("").await?;
    let shard = cluster.shard(0);
    let client = connect(proxy.addr, &User::app()).await?;
    client.execute("INSERT INTO ledger VALUES (1)", &[]).await?;

    // Only the proxy loses the primary; the replicas still stream from it.
    shard.primary().relay().cut().await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for replica in shard.replicas() {
        ensure!(
            replica.is_in_recovery().await?,
            "{} was promoted",
            replica.name()
        );
    }
    // Reads keep flowing on the replicas meanwhile.
    let reader = connect(proxy.addr, &User::app()).await?;
    let addr: String = reader
        .query_one("SELECT inet_server_addr()::text", &[])
        .await?
        .get(0);
    ensure!(names
        .get(&addr)
        .is_some_and(|n| n.starts_with("s0-replica")));

    shard.primary().relay().heal().await?;
    let writer = connect(proxy.addr, &User::app()).await?;
    wait_for(
        "writes after the cut heals",
        Duration::from_secs(20),
        || async {
            Ok(writer
                .execute("INSERT INTO ledger VALUES (2)", &[])
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    let n = shard
        .primary()
        .query_one_i64("SELECT count(*) FROM ledger")
        .await?;
    assert_eq!(n, 2, "writes went somewhere else than the original primary");
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_converge_on_one_new_primary() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let names = prepare_ledger(&cluster).await?;
    let first = proxy(&cluster, "").await?;
    let second = proxy(&cluster, "").await?;
    // Let both see the cluster before the primary dies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.shard(0).primary().kill().await?;
    let mut chosen = Vec::new();
    for (i, p) in [&first, &second].into_iter().enumerate() {
        let client = connect(p.addr, &User::app()).await?;
        let addr: String = wait_for(
            "a write after failover",
            Duration::from_secs(60),
            || async {
                let row = client
                    .query_opt(
                        "INSERT INTO ledger (id) VALUES ($1) RETURNING inet_server_addr()::text",
                        &[&(i as i64 + 10)],
                    )
                    .await;
                Ok(row.ok().flatten().map(|r| r.get::<_, String>(0)))
            },
        )
        .await?;
        chosen.push(names.get(&addr).cloned().unwrap_or(addr));
    }
    assert_eq!(
        chosen[0], chosen[1],
        "the proxies chose different primaries"
    );
    let mut promoted = 0;
    for replica in cluster.shard(0).replicas() {
        if !replica.is_in_recovery().await? {
            promoted += 1;
        }
    }
    assert_eq!(promoted, 1, "{promoted} replicas were promoted");
    first.shutdown().await;
    second.shutdown().await;
    Ok(())
}
