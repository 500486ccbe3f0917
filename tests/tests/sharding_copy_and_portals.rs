//! COPY out of a sharded table, and Execute with a row limit on a sharded database, as pgjdbc (every executeUpdate, and
//! `SET extra_float_digits` at connect) and asyncpg (`fetchrow`, `fetchval`) send it: the
//! first rows and PortalSuspended, as PostgreSQL answers, checked against a direct
//! connection to one shard; a statement without rows completes whatever the limit; a
//! suspended portal on several shards is resumed by the next Execute, in order, with
//! other statements between the parts. Cursors (DECLARE, FETCH, MOVE, CLOSE) over
//! several shards give every row once, in order.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
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
            // The rest in parts, in order, each part checked, with other statements
            // (on the same shards) and a second portal in parts between them.
            let by_name = txn
                .bind("SELECT name FROM items WHERE id <= 20", &[])
                .await?;
            let mut all = first.clone();
            let mut names = Vec::new();
            loop {
                let part: Vec<i64> = txn
                    .query_portal(&sorted, 7)
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                let count: i64 = txn
                    .query_one("SELECT count(*) FROM items", &[])
                    .await?
                    .get(0);
                ensure!(count == 40, "{label}: {count} items between parts");
                names.extend(
                    txn.query_portal(&by_name, 3)
                        .await?
                        .iter()
                        .map(|row| row.get::<_, String>(0)),
                );
                let last = part.len() < 7;
                all.extend(part);
                if last {
                    break;
                }
            }
            ensure!(
                all == (1..=40).collect::<Vec<i64>>(),
                "{label}: resumed rows {all:?}"
            );
            let mut names: Vec<String> = names;
            names.extend(
                txn.query_portal(&by_name, 0)
                    .await?
                    .iter()
                    .map(|row| row.get::<_, String>(0)),
            );
            names.sort();
            let mut expected: Vec<String> = (1..=20).map(|i| format!("item {i}")).collect();
            expected.sort();
            ensure!(names == expected, "{label}: second portal {names:?}");
            // A portal fetched to its end gives no more rows.
            ensure!(
                txn.query_portal(&sorted, 7).await?.is_empty(),
                "{label}: after the end"
            );
            // A grouped result in parts.
            let grouped = txn
                .bind(
                    "SELECT id % 4 AS k, count(*) FROM items GROUP BY 1 ORDER BY 1",
                    &[],
                )
                .await?;
            let mut groups = Vec::new();
            loop {
                let part = txn.query_portal(&grouped, 3).await?;
                let last = part.len() < 3;
                groups.extend(
                    part.iter()
                        .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1))),
                );
                if last {
                    break;
                }
            }
            ensure!(
                groups == vec![(0, 10), (1, 10), (2, 10), (3, 10)],
                "{label}: groups {groups:?}"
            );
        } else {
            ensure!(first.len() == 3, "{label}: {first:?}");
        }
        drop(txn);
    }
    // After the portals the session goes on.
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

/// The rows and the command count of one simple query.
async fn simple_rows(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<(Vec<Vec<String>>, u64)> {
    let mut rows = Vec::new();
    let mut count = 0;
    for message in client.simple_query(sql).await? {
        match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => count = n,
            _ => {}
        }
    }
    Ok((rows, count))
}

/// Cursors over several shards: FETCH gives the next rows of the merged result, in
/// order, with other statements between FETCHes; MOVE skips; CLOSE ends a cursor; what
/// PostgreSQL refuses is refused with its SQLSTATE, and backward fetches with 0A000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_over_several_shards_fetch_every_row_in_order() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster).await?;
    let mut client = connect(proxy.addr, &User::app()).await?;
    items(&client).await?;
    let outside = client
        .simple_query("DECLARE c CURSOR FOR SELECT id FROM items")
        .await;
    ensure!(
        outside.as_ref().err().and_then(sqlstate) == Some("25P01"),
        "DECLARE outside a transaction: {outside:?}"
    );

    client.batch_execute("BEGIN").await?;
    client
        .batch_execute("DECLARE c CURSOR FOR SELECT id, name FROM items ORDER BY id DESC")
        .await?;
    let mut ids = Vec::new();
    loop {
        let (rows, count) = simple_rows(&client, "FETCH 6 FROM c").await?;
        ensure!(
            rows.len() as u64 == count,
            "FETCH {count} with {} rows",
            rows.len()
        );
        for row in &rows {
            ensure!(row[1] == format!("item {}", row[0]), "row {row:?}");
            ids.push(row[0].parse::<i64>()?);
        }
        // Other statements on the same shards between FETCHes.
        client
            .batch_execute("UPDATE items SET name = name WHERE id = 5")
            .await?;
        let (counted, _) = simple_rows(&client, "SELECT count(*) FROM items").await?;
        ensure!(counted == vec![vec!["40".to_string()]], "{counted:?}");
        if count < 6 {
            break;
        }
    }
    ensure!(
        ids == (1..=40).rev().collect::<Vec<i64>>(),
        "fetched {ids:?}"
    );

    client
        .batch_execute("DECLARE m CURSOR FOR SELECT id FROM items ORDER BY id")
        .await?;
    let (moved, count) = simple_rows(&client, "MOVE 10 IN m").await?;
    ensure!(moved.is_empty() && count == 10, "MOVE {count}");
    let (next, _) = simple_rows(&client, "FETCH NEXT FROM m").await?;
    ensure!(next == vec![vec!["11".to_string()]], "after MOVE: {next:?}");
    let (rest, count) = simple_rows(&client, "FETCH ALL FROM m").await?;
    ensure!(
        count == 29 && rest.first() == Some(&vec!["12".to_string()]),
        "FETCH ALL {count}"
    );
    let (none, count) = simple_rows(&client, "FETCH 5 FROM m").await?;
    ensure!(none.is_empty() && count == 0, "after the end: {count}");

    client
        .batch_execute(
            "DECLARE g CURSOR FOR SELECT id % 3 AS k, count(*) FROM items GROUP BY 1 ORDER BY 1",
        )
        .await?;
    let (groups, _) = simple_rows(&client, "FETCH ALL FROM g").await?;
    let expected: Vec<Vec<String>> = [(0, 13), (1, 14), (2, 13)]
        .iter()
        .map(|(k, n)| vec![k.to_string(), n.to_string()])
        .collect();
    ensure!(groups == expected, "grouped cursor {groups:?}");

    client.batch_execute("CLOSE c").await?;
    let closed = client.simple_query("FETCH 1 FROM c").await;
    ensure!(
        closed.as_ref().err().and_then(sqlstate) == Some("34000"),
        "FETCH after CLOSE: {closed:?}"
    );
    client.batch_execute("ROLLBACK").await?;

    // A cursor ends with its transaction; its name can be declared again.
    client.batch_execute("BEGIN").await?;
    client
        .batch_execute("DECLARE c CURSOR FOR SELECT id FROM items ORDER BY id")
        .await?;
    let backward = client.simple_query("FETCH BACKWARD 1 FROM c").await;
    ensure!(
        backward.as_ref().err().and_then(sqlstate) == Some("0A000"),
        "FETCH BACKWARD: {backward:?}"
    );
    client.batch_execute("ROLLBACK").await?;

    // Over the extended protocol, with a parameter and binary results.
    let txn = client.transaction().await?;
    txn.execute(
        "DECLARE e CURSOR FOR SELECT id FROM items WHERE id > $1 ORDER BY id",
        &[&30i64],
    )
    .await?;
    let first: Vec<i64> = txn
        .query("FETCH 4 FROM e", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    ensure!(first == vec![31, 32, 33, 34], "extended FETCH {first:?}");
    txn.rollback().await?;
    proxy.shutdown().await;
    Ok(())
}

/// A COPY row longer than `max_message_size`, cut over many CopyData messages, fails the
/// COPY with 22P04 without storing anything; the session goes on and the next COPY works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_row_longer_than_the_limit_fails_the_copy_alone() -> Result<()> {
    use futures::SinkExt;
    let cluster = Cluster::start(2, 0).await?;
    let proxy = pgshard_tests::start_sharded_proxy_with(
        &cluster,
        &[("items", "id")],
        2,
        "max_message_size = \"1MB\"",
    )
    .await?;
    let client = connect(proxy.addr, &User::app()).await?;
    client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
        .await?;
    let sink = client.copy_in("COPY items (id, name) FROM STDIN").await?;
    futures::pin_mut!(sink);
    let mut sent = Ok(());
    sent = sent.and(sink.send(bytes::Bytes::from_static(b"1\tshort\n")).await);
    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    sent = sent.and(sink.send(bytes::Bytes::from_static(b"2\t")).await);
    for _ in 0..48 {
        if sent.is_err() {
            break;
        }
        sent = sink.send(chunk.clone()).await;
    }
    let finished = match sent {
        Ok(()) => sink.finish().await,
        Err(e) => Err(e),
    };
    let error = finished.err().context("a 3 MB row was copied")?;
    ensure!(sqlstate(&error) == Some("22P04"), "{error}");
    let count: i64 = client
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    ensure!(count == 0, "{count} rows stored by the failed COPY");
    let sink = client.copy_in("COPY items (id, name) FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\ta\n2\tb\n3\tc\n"))
        .await?;
    ensure!(sink.finish().await? == 3, "the next COPY");
    proxy.shutdown().await;
    Ok(())
}
