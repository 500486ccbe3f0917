//! Execute with a row limit on a sharded database, as pgjdbc (every executeUpdate, and
//! `SET extra_float_digits` at connect) and asyncpg (`fetchrow`, `fetchval`) send it: the
//! first rows and PortalSuspended, as PostgreSQL answers, checked against a direct
//! connection to one shard; a statement without rows completes whatever the limit; a
//! suspended portal on several shards is refused when resumed, never answered wrongly.

use anyhow::{ensure, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{connect, sqlstate, Cluster, User};

/// A proxy over both shards of `cluster`, sharding `items` by `id`.
async fn proxy(cluster: &Cluster) -> Result<ProxyHandle> {
    let mut toml = String::from(
        "[proxy]\nlisten = \"127.0.0.1:0\"\npool_size = 4\n\
         [[users]]\nname = \"app\"\npassword = \"app\"\n\
         [[databases]]\nname = \"app\"\n\
         [[databases.sharded_tables]]\ntable = \"items\"\ncolumn = \"id\"\n",
    );
    for shard in cluster.shards() {
        toml.push_str(&format!(
            "[[databases.shards]]\nprimary = \"{}\"\n",
            shard.primary().proxy_addr()
        ));
    }
    let config = pgshard_config::parse(&toml, "sharding_portals.toml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pgshard_proxy::start(config).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_limits_on_a_sharded_database_answer_as_postgres() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster).await?;
    let mut through = connect(proxy.addr, &User::app()).await?;
    through
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
        .await?;
    let insert = through
        .prepare("INSERT INTO items (id, name) VALUES ($1, $2)")
        .await?;
    for id in 1..=40i64 {
        through
            .execute(&insert, &[&id, &format!("item {id}")])
            .await?;
    }
    let mut direct = cluster.shard(0).primary().client(&User::app()).await?;
    // A key on shard 0, so the direct connection has its row too.
    let key: i64 = direct
        .query_one("SELECT min(id) FROM items", &[])
        .await?
        .get(0);

    for (label, client) in [("direct", &mut direct), ("pgshard", &mut through)] {
        let txn = client.transaction().await?;
        // No rows: the limit does not matter.
        let set = txn.bind("SET extra_float_digits = 3", &[]).await?;
        ensure!(txn.query_portal(&set, 1).await?.is_empty(), "{label}: SET");
        let update = txn
            .bind("UPDATE items SET name = name WHERE id = 7", &[])
            .await?;
        txn.query_portal(&update, 1).await?;
        // One row by key, as fetchrow asks: exactly one.
        let one = txn
            .bind("SELECT name FROM items WHERE id = $1", &[&key])
            .await?;
        let rows = txn.query_portal(&one, 1).await?;
        ensure!(rows.len() == 1, "{label}: {} rows by key", rows.len());
        ensure!(
            rows[0].get::<_, String>(0) == format!("item {key}"),
            "{label}"
        );
        // The first rows of a query on every shard: that many, in order.
        let sorted = txn.bind("SELECT id FROM items ORDER BY id", &[]).await?;
        let first: Vec<i64> = txn
            .query_portal(&sorted, 3)
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if label == "pgshard" {
            ensure!(first == vec![1, 2, 3], "{label}: first rows {first:?}");
            // Resuming a portal the shards no longer hold is refused, not answered wrongly.
            let resumed = txn.query_portal(&sorted, 3).await;
            match resumed {
                Err(e) => ensure!(sqlstate(&e) == Some("0A000"), "{label}: resumed: {e}"),
                Ok(rows) => anyhow::bail!("{label}: resumed a portal: {} rows", rows.len()),
            }
        } else {
            ensure!(first.len() == 3, "{label}: {first:?}");
        }
        drop(txn);
    }
    // After the refusal the session goes on.
    let count: i64 = through
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    ensure!(count == 40, "{count} items");
    proxy.shutdown().await;
    Ok(())
}
