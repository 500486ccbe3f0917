//! Each shard of a sharded database keeps its read/write split: reads by key run on that
//! shard's replica, fan-out reads on every shard's replica, writes and transactions on the
//! shards' primaries, and a client reads its own writes. Where a statement ran is
//! observed with `inet_server_addr()`, which names the container that answered.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_router::sharding::{hash_partition, KeyValue};
use pgshard_tests::{connect, wait_for, Cluster, User};
use tokio_postgres::{Client, SimpleQueryMessage};

/// A proxy over every shard of `cluster`, sharding `items` by `id`.
async fn proxy(cluster: &Cluster) -> Result<ProxyHandle> {
    let mut shards = String::new();
    for shard in cluster.shards() {
        let replicas: Vec<String> = shard
            .replicas()
            .iter()
            .map(|r| format!("\"{}\"", r.proxy_addr()))
            .collect();
        shards.push_str(&format!(
            "[[databases.shards]]\nprimary = \"{}\"\nreplicas = [{}]\n",
            shard.primary().proxy_addr(),
            replicas.join(", ")
        ));
    }
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
[[databases.sharded_tables]]
table = "items"
column = "id"
{shards}"#
    );
    let config = pgshard_config::parse(&toml, "sharding_routing.toml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pgshard_proxy::start(config).await?)
}

/// Node names by the address `inet_server_addr()` gives on each node.
async fn node_names(cluster: &Cluster) -> Result<HashMap<String, String>> {
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

/// The names of the nodes that answered `sql`, whose rows' first column is
/// `inet_server_addr()::text` (simple protocol, so the answer is whatever the proxy merged).
async fn answered_by(
    client: &Client,
    sql: &str,
    names: &HashMap<String, String>,
) -> Result<Vec<String>> {
    let mut nodes = Vec::new();
    for message in client.simple_query(sql).await.context(sql.to_string())? {
        if let SimpleQueryMessage::Row(row) = message {
            let addr = row.get(0).unwrap_or_default().to_string();
            nodes.push(names.get(&addr).cloned().unwrap_or(addr));
        }
    }
    Ok(nodes)
}

/// The shard `hash` sharding puts an `items.id` on.
fn shard_of(id: i64, shards: usize) -> usize {
    hash_partition(&KeyValue::Int(id), shards)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shard_keeps_its_read_write_split() -> Result<()> {
    let cluster = Cluster::start(2, 1).await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let names = node_names(&cluster).await?;
    let proxy = proxy(&cluster).await?;
    let client = connect(proxy.addr, &User::app()).await?;
    client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, n int)")
        .await?;
    client
        .batch_execute("INSERT INTO items (id, n) SELECT g, g FROM generate_series(1, 1) g")
        .await
        .err()
        .context("INSERT … SELECT into a sharded table must be refused")?;
    let values: Vec<String> = (1..=40).map(|i| format!("({i}, {i})")).collect();
    client
        .batch_execute(&format!(
            "INSERT INTO items (id, n) VALUES {}",
            values.join(", ")
        ))
        .await?;

    // Both replicas have replayed the rows (and the monitor sees them as usable).
    let reader = connect(proxy.addr, &User::app()).await?;
    wait_for(
        "both shards' replicas to serve reads",
        Duration::from_secs(30),
        || async {
            let sql = "SELECT inet_server_addr()::text, count(*) FROM items GROUP BY 1";
            let Ok(nodes) = answered_by(&reader, sql, &names).await else {
                return Ok(None);
            };
            let replicas: HashSet<_> = nodes.iter().filter(|n| n.contains("replica")).collect();
            Ok((replicas.len() == 2).then_some(()))
        },
    )
    .await?;

    // A read by key runs on the replica of that key's shard, and only there.
    for id in [1i64, 2, 3, 4, 5] {
        let expected = format!("s{}-replica1", shard_of(id, 2));
        let nodes = answered_by(
            &reader,
            &format!("SELECT inet_server_addr()::text FROM items WHERE id = {id}"),
            &names,
        )
        .await?;
        ensure!(
            nodes == vec![expected.clone()],
            "id {id} read on {nodes:?}, expected {expected}"
        );
    }

    // A fan-out read runs on both shards' replicas.
    let nodes: HashSet<String> = answered_by(
        &reader,
        "SELECT inet_server_addr()::text FROM items",
        &names,
    )
    .await?
    .into_iter()
    .collect();
    let expected: HashSet<String> = ["s0-replica1", "s1-replica1"].map(String::from).into();
    ensure!(nodes == expected, "fan-out read on {nodes:?}");

    // A transaction runs on the primaries of the shards it touches.
    let writer = connect(proxy.addr, &User::app()).await?;
    writer.batch_execute("BEGIN").await?;
    let nodes: HashSet<String> = answered_by(
        &writer,
        "SELECT inet_server_addr()::text FROM items",
        &names,
    )
    .await?
    .into_iter()
    .collect();
    let expected: HashSet<String> = ["s0-primary", "s1-primary"].map(String::from).into();
    ensure!(nodes == expected, "reads in a transaction on {nodes:?}");
    writer
        .batch_execute("UPDATE items SET n = n + 1; COMMIT")
        .await?;

    // Read-your-writes: a row written by this client is read back at once, by key.
    for id in 100..120i64 {
        writer
            .batch_execute(&format!("INSERT INTO items (id, n) VALUES ({id}, 7)"))
            .await?;
        let row = writer
            .query_opt("SELECT n FROM items WHERE id = $1", &[&id])
            .await?
            .with_context(|| format!("row {id} not read back right after its INSERT"))?;
        ensure!(row.get::<_, i32>(0) == 7, "row {id} read back wrong");
    }
    let total: i64 = writer
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    ensure!(total == 60, "count(*) over both shards gave {total}");

    // A `role=replica` hint skips read-your-writes, as on a one-shard database: right
    // after a write, the hinted read runs on the key's replica.
    for id in 200..205i64 {
        writer
            .batch_execute(&format!("INSERT INTO items (id, n) VALUES ({id}, 7)"))
            .await?;
        let nodes = answered_by(
            &writer,
            "/* pgshard: role=replica */ SELECT inet_server_addr()::text FROM items WHERE id = 1",
            &names,
        )
        .await?;
        let expected = format!("s{}-replica1", shard_of(1, 2));
        ensure!(
            nodes == vec![expected.clone()],
            "hinted read after a write on {nodes:?}, expected {expected}"
        );
    }
    Ok(())
}
