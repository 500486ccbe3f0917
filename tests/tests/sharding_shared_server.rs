//! Two shards as two databases of one server (`[[databases.shards]] server_database`):
//! DDL reaches both, each row is stored in the database of its shard, and reads through
//! the proxy merge both.

use anyhow::{ensure, Result};
use pgshard_tests::{connect, start_proxy_toml, Cluster, User};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_on_one_server_are_two_databases() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let node = cluster.shard(0).primary();
    let admin = node.client(&User::postgres()).await?;
    for database in ["shard_a", "shard_b"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {database} OWNER app"))
            .await?;
    }
    let addr = node.proxy_addr();
    let toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\npool_size = 2\n\
         [[users]]\nname = \"app\"\npassword = \"app\"\n\
         [[databases]]\nname = \"app\"\n\
         [[databases.sharded_tables]]\ntable = \"items\"\ncolumn = \"id\"\n\
         [[databases.shards]]\nprimary = \"{addr}\"\nserver_database = \"shard_a\"\n\
         [[databases.shards]]\nprimary = \"{addr}\"\nserver_database = \"shard_b\"\n"
    );
    let proxy = start_proxy_toml(&toml, "shared-server.toml").await?;
    let client = connect(proxy.addr, &User::app()).await?;
    client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
        .await?;
    let insert = client
        .prepare("INSERT INTO items (id, name) VALUES ($1, $2)")
        .await?;
    for id in 1..=100i64 {
        client
            .execute(&insert, &[&id, &format!("item {id}")])
            .await?;
    }
    let mut stored = 0;
    for database in ["shard_a", "shard_b"] {
        let direct = connect(node.addr(), &User::new("app", "app", database)).await?;
        let here: i64 = direct
            .query_one("SELECT count(*) FROM items", &[])
            .await?
            .get(0);
        ensure!(
            (10..=90).contains(&here),
            "{here} of 100 rows in {database}: both shards hold rows"
        );
        stored += here;
    }
    ensure!(stored == 100, "{stored} rows stored in all");
    let ids: Vec<i64> = client
        .query("SELECT id FROM items ORDER BY id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    ensure!(
        ids == (1..=100).collect::<Vec<i64>>(),
        "merged read {ids:?}"
    );
    proxy.shutdown().await;
    Ok(())
}
