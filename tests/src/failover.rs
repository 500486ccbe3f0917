//! What the failover and switchover tests share: a proxy with failover on in front of a
//! cluster's shard 0, a write load that records every acknowledged write, and the names
//! of nodes by the address they report.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgshard_proxy::ProxyHandle;

use crate::client::connect;
use crate::cluster::{Cluster, ClusterOptions};
use crate::error::{HarnessError, Result};
use crate::user::User;
use crate::wait::wait_for;

/// The admin console's login in [`start_failover_proxy`]'s configuration.
pub fn admin_user() -> User {
    User::new("admin", "admin", "pgshard")
}

/// Starts a proxy with failover on in front of shard 0 of `cluster`, through the nodes'
/// relays, with `admin` as an admin console user. `extra` is added to
/// `[databases.failover]`. The proxy logs to the test's output when `RUST_LOG` asks.
pub async fn start_failover_proxy(cluster: &Cluster, extra: &str) -> Result<ProxyHandle> {
    start_failover_proxy_with(cluster, extra, "").await
}

/// Like [`start_failover_proxy`], over every shard of `cluster`; `sharding` is added to
/// the database (e.g. its `[[databases.sharded_tables]]`).
pub async fn start_failover_proxy_with(
    cluster: &Cluster,
    extra: &str,
    sharding: &str,
) -> Result<ProxyHandle> {
    start_failover_proxy_tuned(cluster, "", extra, sharding).await
}

/// Like [`start_failover_proxy_with`]; `proxy` is added to `[proxy]` (e.g. TLS settings).
pub async fn start_failover_proxy_tuned(
    cluster: &Cluster,
    proxy: &str,
    extra: &str,
    sharding: &str,
) -> Result<ProxyHandle> {
    // Checks five times a second: tests see a failover in about a second.
    let proxy = format!("connect_timeout = \"1s\"\n{proxy}");
    let quick = "[databases.routing]\nhealth_check_interval = \"200ms\"\n\
                 [databases.failover]\nfailure_threshold = 3\ncheck_timeout = \"1s\"\nhold_timeout = \"30s\"";
    start_failover_proxy_toml(cluster, &proxy, quick, extra, sharding).await
}

/// A proxy with failover on and every timing at its default, as a user's first
/// configuration has it: only the logins are given.
pub async fn start_failover_proxy_defaults(cluster: &Cluster) -> Result<ProxyHandle> {
    start_failover_proxy_toml(cluster, "", "[databases.failover]", "", "").await
}

/// The configuration both kinds share; `proxy` goes to `[proxy]`, and `timing` opens
/// `[databases.failover]` (with `[databases.routing]` before it if it likes).
async fn start_failover_proxy_toml(
    cluster: &Cluster,
    proxy: &str,
    timing: &str,
    extra: &str,
    sharding: &str,
) -> Result<ProxyHandle> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let shards: String = cluster
        .shards()
        .iter()
        .map(|shard| {
            format!(
                "[[databases.shards]]\nprimary = \"{}\"\nreplicas = [{}]\n",
                shard.primary().proxy_addr(),
                shard.replicas_toml()
            )
        })
        .collect();
    let toml = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
pool_size = 4
admin_users = ["admin"]
{proxy}
[[users]]
name = "app"
password = "app"
[[users]]
name = "admin"
password = "admin"
[[databases]]
name = "app"
{sharding}
{timing}
enabled = true
user = "postgres"
password = "postgres"
replication_user = "replicator"
replication_password = "replicator"
{extra}
{shards}"#
    );
    crate::proxy::start_proxy_toml(&toml, "failover.toml").await
}

/// What most failover tests start from: a cluster whose shard 0 has the `ledger`
/// table, the names of its nodes (see [`node_names`]), and a proxy with failover on in
/// front of it (see [`start_failover_proxy`]).
pub type FailoverBed = (Cluster, HashMap<String, String>, ProxyHandle);

/// A [`FailoverBed`] of a primary and two replicas; `extra` goes to
/// `[databases.failover]`.
pub async fn failover_bed(extra: &str) -> Result<FailoverBed> {
    let options = ClusterOptions {
        replicas_per_shard: 2,
        ..ClusterOptions::default()
    };
    failover_bed_with(options, extra).await
}

/// A [`FailoverBed`] of the cluster `options` describes.
pub async fn failover_bed_with(options: ClusterOptions, extra: &str) -> Result<FailoverBed> {
    let cluster = Cluster::start_with(options).await?;
    let names = prepare_ledger(&cluster).await?;
    let proxy = start_failover_proxy(&cluster, extra).await?;
    Ok((cluster, names, proxy))
}

/// A [`FailoverBed`] of the cluster `options` describes, its proxy at default timings
/// (see [`start_failover_proxy_defaults`]).
pub async fn failover_bed_defaults(options: ClusterOptions) -> Result<FailoverBed> {
    let cluster = Cluster::start_with(options).await?;
    let names = prepare_ledger(&cluster).await?;
    let proxy = start_failover_proxy_defaults(&cluster).await?;
    Ok((cluster, names, proxy))
}

/// Creates `ledger (id bigint PRIMARY KEY)` on shard 0 and returns [`node_names`].
pub async fn prepare_ledger(cluster: &Cluster) -> Result<HashMap<String, String>> {
    cluster
        .shard(0)
        .primary()
        .execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        .await?;
    node_names(cluster).await
}

/// The name of the node the proxy sends writes to.
pub async fn primary_name(proxy: &ProxyHandle, names: &HashMap<String, String>) -> Result<String> {
    let addr: String = query_proxy(
        proxy,
        "/* pgshard: role=primary */ SELECT inet_server_addr()::text",
    )
    .await?;
    Ok(names.get(&addr).cloned().unwrap_or(addr))
}

/// One value from a query through the proxy, as `app`.
async fn query_proxy(proxy: &ProxyHandle, sql: &str) -> Result<String> {
    let sql_error = |source| HarnessError::Sql {
        node: format!("proxy {}", proxy.addr),
        source,
    };
    let client = connect(proxy.addr, &User::app()).await.map_err(sql_error)?;
    let row = client.query_one(sql, &[]).await.map_err(sql_error)?;
    row.try_get(0).map_err(sql_error)
}

/// The acknowledged `ids` missing from the ledger of node `name`.
pub async fn missing_writes(cluster: &Cluster, name: &str, ids: &[i64]) -> Result<Vec<i64>> {
    let node = node(cluster, name)?;
    let present: Vec<i64> = node
        .query_one("SELECT coalesce(array_agg(id), '{}') FROM ledger")
        .await?;
    let present: HashSet<i64> = present.into_iter().collect();
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect())
}

/// Waits until the other replica of shard 0 streams from node `name`, a promoted one.
pub async fn wait_other_replica_follows(cluster: &Cluster, name: &str) -> Result<()> {
    let node = node(cluster, name)?;
    let what = format!("the other replica to stream from {name}");
    wait_for(&what, Duration::from_secs(30), || async {
        Ok((node.streaming_replicas().await?.len() == 1).then_some(()))
    })
    .await
}

/// The replicas of shard 0 that are no longer in recovery.
pub async fn promoted_replicas(cluster: &Cluster) -> Result<Vec<String>> {
    let mut primaries = Vec::new();
    for replica in cluster.shard(0).replicas() {
        if !replica.is_in_recovery().await? {
            primaries.push(replica.name().to_string());
        }
    }
    Ok(primaries)
}

/// Node name by the address `inet_server_addr()` reports on it.
pub async fn node_names(cluster: &Cluster) -> Result<HashMap<String, String>> {
    let mut names = HashMap::new();
    for node in cluster.nodes() {
        let addr: String = node.query_one("SELECT inet_server_addr()::text").await?;
        names.insert(addr, node.name().to_string());
    }
    Ok(names)
}

/// Longer than any wait the proxy imposes (hold_timeout 30s): an answer later than this
/// means the proxy hung the client.
pub const HUNG: Duration = Duration::from_secs(45);

/// Writers inserting numbered rows into `ledger (id bigint)` through the proxy; every id
/// whose INSERT returned OK is recorded as acknowledged.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<i64>>>,
    failed: Arc<AtomicI64>,
    /// Logins or writes the proxy left unanswered for [`HUNG`]: the proxy must never hang
    /// a client, so the tests require zero.
    hung: Arc<AtomicI64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a stopped [`WriteLoad`] saw.
#[derive(Debug)]
pub struct WriteOutcome {
    pub acknowledged: Vec<i64>,
    /// Writes that returned an error (the writer then logs in again).
    pub failed: i64,
}

impl WriteLoad {
    /// Starts `writers` clients of the proxy at `proxy`, each inserting ids of its own.
    pub fn start(proxy: &ProxyHandle, writers: i64) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicI64::new(0));
        let hung = Arc::new(AtomicI64::new(0));
        let tasks = (0..writers)
            .map(|w| {
                let writer = Writer {
                    stop: stop.clone(),
                    acknowledged: acknowledged.clone(),
                    failed: failed.clone(),
                    hung: hung.clone(),
                };
                tokio::spawn(writer.run(proxy.addr, w * 1_000_000))
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

    /// Writes acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        lock(&self.acknowledged).len()
    }

    /// Writes failed so far.
    pub fn failed(&self) -> i64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops the writers; fails if the proxy left any login or write hanging.
    pub async fn stop(self) -> Result<WriteOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let hung = self.hung.load(Ordering::Relaxed);
        if hung > 0 {
            return Err(HarnessError::Proxy {
                action: "serve the write load".to_string(),
                reason: format!("{hung} logins or writes got no answer within {HUNG:?}"),
            });
        }
        Ok(WriteOutcome {
            acknowledged: lock(&self.acknowledged).clone(),
            failed: self.failed.load(Ordering::Relaxed),
        })
    }
}

/// One writer of a [`WriteLoad`].
struct Writer {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<i64>>>,
    failed: Arc<AtomicI64>,
    hung: Arc<AtomicI64>,
}

impl Writer {
    async fn run(self, addr: std::net::SocketAddr, mut id: i64) {
        while !self.stop.load(Ordering::Relaxed) {
            let user = User::app();
            let client = match tokio::time::timeout(HUNG, connect(addr, &user)).await {
                Ok(Ok(client)) => client,
                Ok(Err(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(_) => {
                    self.hung.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            while !self.stop.load(Ordering::Relaxed) {
                id += 1;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                let insert = client.execute("INSERT INTO ledger (id) VALUES ($1)", &params);
                match tokio::time::timeout(HUNG, insert).await {
                    Ok(Ok(_)) => lock(&self.acknowledged).push(id),
                    Ok(Err(_)) => {
                        self.failed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(_) => {
                        self.hung.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
}

fn node<'a>(cluster: &'a Cluster, name: &str) -> Result<&'a crate::node::Node> {
    cluster.node(name).ok_or_else(|| HarnessError::Proxy {
        action: "find a node".to_string(),
        reason: format!("no node {name}"),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
