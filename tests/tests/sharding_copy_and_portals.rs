//! COPY out of a sharded table, and Execute with a row limit on a sharded database, as pgjdbc (every executeUpdate, and
//! `SET extra_float_digits` at connect) and asyncpg (`fetchrow`, `fetchval`) send it: the
//! first rows and PortalSuspended, as PostgreSQL answers, checked against a direct
//! connection to one shard; a statement without rows completes whatever the limit; a
//! suspended portal on several shards is refused when resumed, never answered wrongly.

use std::collections::BTreeSet;

use anyhow::{ensure, Result};
use futures::TryStreamExt;
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{connect, sqlstate, start_sharded_proxy, Cluster, User};

/// A proxy over both shards of `cluster`, sharding `items` by `id`.
async fn proxy(cluster: &Cluster) -> Result<ProxyHandle> {
    Ok(start_sharded_proxy(cluster, &[("items", "id")], 4).await?)
}

/// Creates `items` through `client` with 40 rows, `item 1` to `item 40`.
async fn items(client: &tokio_postgres::Client) -> Result<()> {
    client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
        .await?;
    let insert = client
        .prepare("INSERT INTO items (id, name) VALUES ($1, $2)")
        .await?;
    for id in 1..=40i64 {
        client
            .execute(&insert, &[&id, &format!("item {id}")])
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_limits_on_a_sharded_database_answer_as_postgres() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster).await?;
    let mut through = connect(proxy.addr, &User::app()).await?;
    items(&through).await?;
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

/// Every line of a `COPY … TO STDOUT` through `client`.
async fn copy_lines(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<String>> {
    let stream = client.copy_out(sql).await?;
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await?;
    let text: String = chunks
        .iter()
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect();
    Ok(text.lines().map(str::to_string).collect())
}

/// `COPY sharded_table TO STDOUT` gives every shard's rows once, as one copy; a header
/// line comes once; `TO STDIN` is taken as PostgreSQL takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_out_of_a_sharded_table_gives_every_row_once() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster).await?;
    let through = connect(proxy.addr, &User::app()).await?;
    items(&through).await?;
    // What the shards hold, read directly.
    let mut expected = BTreeSet::new();
    for shard in cluster.shards() {
        let direct = shard.primary().client(&User::app()).await?;
        let lines = copy_lines(&direct, "COPY items TO STDOUT").await?;
        ensure!(
            !lines.is_empty(),
            "a shard holds no row: the test proves nothing"
        );
        expected.extend(lines);
    }
    ensure!(
        expected.len() == 40,
        "{} distinct rows on the shards",
        expected.len()
    );

    let lines = copy_lines(&through, "COPY items TO STDOUT").await?;
    ensure!(lines.len() == 40, "{} lines through pgshard", lines.len());
    ensure!(lines.iter().cloned().collect::<BTreeSet<_>>() == expected);

    let csv = copy_lines(
        &through,
        "COPY items (id, name) TO STDOUT WITH (FORMAT csv, HEADER)",
    )
    .await?;
    ensure!(
        csv.first().map(String::as_str) == Some("id,name"),
        "{:?}",
        csv.first()
    );
    ensure!(
        csv.iter().filter(|line| *line == "id,name").count() == 1 && csv.len() == 41,
        "{} lines, header {} times",
        csv.len(),
        csv.iter().filter(|line| *line == "id,name").count()
    );
    let to_stdin = copy_lines(&through, "COPY items TO STDIN").await?;
    ensure!(
        to_stdin.len() == 40,
        "{} lines for TO STDIN",
        to_stdin.len()
    );
    proxy.shutdown().await;
    Ok(())
}

/// asyncpg's type introspection runs `SELECT set_config('jit', 'off', false)`: a literal
/// set_config() is kept like a SET, on every shard the session uses, in transaction
/// pooling too (it was refused as a statement that pins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_literal_set_config_holds_on_every_shard() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster).await?;
    let client = connect(proxy.addr, &User::app()).await?;
    client
        .simple_query("SELECT set_config('search_path', 'pg_catalog, public', false)")
        .await?;
    client
        .simple_query("SELECT set_config('jit', 'off', false)")
        .await?;
    for round in 0..3 {
        for shard in 0..2 {
            let path: String = client
                .query_one(
                    &format!("/* pgshard: shard={shard} */ SELECT current_setting('search_path')"),
                    &[],
                )
                .await?
                .get(0);
            ensure!(
                path == "pg_catalog, public",
                "round {round}, shard {shard}: search_path {path:?}"
            );
            let jit: String = client
                .query_one(
                    &format!("/* pgshard: shard={shard} */ SELECT current_setting('jit')"),
                    &[],
                )
                .await?
                .get(0);
            ensure!(jit == "off", "round {round}, shard {shard}: jit {jit}");
        }
    }
    proxy.shutdown().await;
    Ok(())
}
