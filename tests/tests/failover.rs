//! Automatic failover through the proxy on real replicated clusters: a killed primary is
//! replaced by its most advanced replica, writes carry on, the old primary is fenced when
//! it returns, and a proxy merely cut off from the primary promotes nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{connect, wait_for, Cluster, ClusterOptions, User};

/// Starts a proxy with failover on in front of shard 0, through the nodes' relays.
async fn proxy(cluster: &Cluster, extra: &str) -> Result<ProxyHandle> {
    // The proxy's log, when RUST_LOG asks for it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
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
connect_timeout = "1s"
[[users]]
name = "app"
password = "app"
[[databases]]
name = "app"
[databases.routing]
health_check_interval = "200ms"
[databases.failover]
enabled = true
user = "postgres"
password = "postgres"
replication_user = "replicator"
replication_password = "replicator"
failure_threshold = 3
check_timeout = "1s"
hold_timeout = "30s"
{extra}
[[databases.shards]]
primary = "{}"
replicas = [{}]
"#,
        shard.primary().proxy_addr(),
        replicas.join(", ")
    );
    let config =
        pgshard_config::parse(&toml, "failover.toml").map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pgshard_proxy::start(config).await?)
}

/// Node name by the address `inet_server_addr()` reports on it.
async fn names(cluster: &Cluster) -> Result<HashMap<String, String>> {
    let mut names = HashMap::new();
    for node in cluster.nodes() {
        let client = node.client(&User::app()).await?;
        let addr: String = client
            .query_one("SELECT inet_server_addr()::text", &[])
            .await?
            .get(0);
        names.insert(addr, node.name().to_string());
    }
    Ok(names)
}

/// Longer than any wait the proxy imposes (hold_timeout 30s): an answer later than this
/// means the proxy hung the client.
const HUNG: Duration = Duration::from_secs(45);

/// Writers inserting numbered rows through the proxy; every id whose INSERT returned OK is
/// recorded as acknowledged.
struct WriteLoad {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<i64>>>,
    failed: Arc<AtomicI64>,
    /// Logins or writes the proxy left unanswered for [`HUNG`]: the proxy must never hang
    /// a client, so the tests require zero.
    hung: Arc<AtomicI64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WriteLoad {
    fn start(proxy: &ProxyHandle, writers: i64) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicI64::new(0));
        let hung = Arc::new(AtomicI64::new(0));
        let tasks = (0..writers)
            .map(|w| {
                let (stop, acknowledged, failed, hung) = (
                    stop.clone(),
                    acknowledged.clone(),
                    failed.clone(),
                    hung.clone(),
                );
                let addr = proxy.addr;
                tokio::spawn(async move {
                    let mut id = w * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        let user = User::app();
                        let login = tokio::time::timeout(HUNG, connect(addr, &user));
                        let client = match login.await {
                            Ok(Ok(client)) => client,
                            Ok(Err(_)) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            Err(_) => {
                                hung.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        };
                        while !stop.load(Ordering::Relaxed) {
                            id += 1;
                            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                            let insert =
                                client.execute("INSERT INTO ledger (id) VALUES ($1)", &params);
                            match tokio::time::timeout(HUNG, insert).await {
                                Ok(Ok(_)) => acknowledged.lock().unwrap().push(id),
                                Ok(Err(_)) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                                Err(_) => {
                                    hung.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        WriteLoad {
            stop,
            acknowledged,
            failed,
            hung,
            tasks,
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Stops the writers; fails if the proxy left any login or write hanging.
    async fn stop(self) -> Result<(Vec<i64>, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let hung = self.hung.load(Ordering::Relaxed);
        ensure!(
            hung == 0,
            "{hung} logins or writes got no answer within {HUNG:?}"
        );
        let ids = self.acknowledged.lock().unwrap().clone();
        Ok((ids, self.failed.load(Ordering::Relaxed)))
    }
}

/// Kills the primary under a write load and waits until writes are acknowledged again;
/// returns the load (still running), the time writes took to resume, and the new
/// primary's name.
async fn kill_primary_under_load(
    cluster: &Cluster,
    proxy: &ProxyHandle,
    names: &HashMap<String, String>,
) -> Result<(WriteLoad, Duration, String)> {
    let load = WriteLoad::start(proxy, 3);
    wait_for(
        "writes through the proxy",
        Duration::from_secs(20),
        || async { Ok((load.acknowledged() > 50).then_some(())) },
    )
    .await?;
    cluster.shard(0).primary().kill().await?;
    let killed = Instant::now();
    let before = load.acknowledged();
    wait_for(
        "writes to resume on a new primary",
        Duration::from_secs(60),
        || async { Ok((load.acknowledged() > before + 50).then_some(())) },
    )
    .await?;
    let resumed = killed.elapsed();
    let client = connect(proxy.addr, &User::app()).await?;
    let addr: String = client
        .query_one(
            "/* pgshard: role=primary */ SELECT inet_server_addr()::text",
            &[],
        )
        .await?
        .get(0);
    let primary = names.get(&addr).cloned().unwrap_or(addr);
    Ok((load, resumed, primary))
}

async fn prepare(cluster: &Cluster) -> Result<HashMap<String, String>> {
    cluster
        .shard(0)
        .primary()
        .execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        .await?;
    names(cluster).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_fenced_when_it_returns() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let names = prepare(&cluster).await?;
    let proxy = proxy(&cluster, "").await?;
    let (load, resumed, primary) = kill_primary_under_load(&cluster, &proxy, &names).await?;
    eprintln!("failover: writes resumed {resumed:?} after the primary was killed, on {primary}");
    ensure!(
        primary.starts_with("s0-replica"),
        "writes went to {primary}"
    );
    let (ids, failed) = load.stop().await?;
    ensure!(!ids.is_empty());
    eprintln!(
        "failover: {} writes acknowledged, {failed} failed",
        ids.len()
    );

    // Exactly one replica was promoted; the other streams from it.
    let shard = cluster.shard(0);
    let mut primaries = Vec::new();
    for replica in shard.replicas() {
        if !replica.is_in_recovery().await? {
            primaries.push(replica.name().to_string());
        }
    }
    assert_eq!(primaries, vec![primary.clone()]);
    let new_primary = cluster.node(&primary).context("new primary")?;
    wait_for(
        "the other replica to stream from the new primary",
        Duration::from_secs(30),
        || async { Ok((new_primary.streaming_replicas().await?.len() == 1).then_some(())) },
    )
    .await?;

    // The old primary comes back as a primary on the old timeline: it gets no traffic.
    shard.primary().start().await?;
    shard.primary().wait_ready(Duration::from_secs(60)).await?;
    ensure!(
        !shard.primary().is_in_recovery().await?,
        "the old primary came back as a standby"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let client = connect(proxy.addr, &User::app()).await?;
    for i in 0..20i64 {
        let row = client
            .query_one(
                "INSERT INTO ledger (id) VALUES ($1) RETURNING inet_server_addr()::text",
                &[&(-1 - i)],
            )
            .await?;
        let addr: String = row.get(0);
        assert_eq!(
            names.get(&addr),
            Some(&primary),
            "a write reached the fenced node"
        );
        let reader = connect(proxy.addr, &User::app()).await?;
        let addr: String = reader
            .query_one("SELECT inet_server_addr()::text", &[])
            .await?
            .get(0);
        assert_ne!(
            names.get(&addr).map(String::as_str),
            Some("s0-primary"),
            "a read reached the fenced node"
        );
    }
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_synchronous_replication_no_acknowledged_write_is_lost() -> Result<()> {
    let cluster = Cluster::start_with(ClusterOptions {
        replicas_per_shard: 2,
        synchronous: true,
        ..ClusterOptions::default()
    })
    .await?;
    let names = prepare(&cluster).await?;
    let proxy = proxy(&cluster, "").await?;
    let (load, resumed, primary) = kill_primary_under_load(&cluster, &proxy, &names).await?;
    let (ids, _) = load.stop().await?;
    eprintln!(
        "synchronous failover: writes resumed after {resumed:?} on {primary}; {} acknowledged",
        ids.len()
    );
    let new_primary = cluster.node(&primary).context("new primary")?;
    let client = new_primary.client(&User::app()).await?;
    let rows = client.query("SELECT id FROM ledger", &[]).await?;
    let present: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let lost: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
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
    let cluster = Cluster::start(1, 2).await?;
    let names = prepare(&cluster).await?;
    let proxy = proxy(&cluster, "").await?;
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
    let names = prepare(&cluster).await?;
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
