//! Atomic commit across shards: a transaction that wrote on several shards ends
//! committed on all of them or on none, whatever fails — the proxy dying at each step
//! of the two-phase commit, a participant's primary dying at each step, a shard refusing
//! the commit — and nothing is left in `pg_prepared_xacts` once recovery has run. With
//! `two_phase_commit = "off"`, a COMMIT that fails part-way names the shards that
//! committed.
//!
//! Every check reads each shard's primary directly, not through the proxy.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use pgshard_tests::two_phase::{
    id_on, prepared, rows_per_shard, two_phase_proxy, wait_settled, FAST_RECOVERY,
};
use pgshard_tests::{connect, sqlstate, Cluster, User};
use tokio_postgres::Client;

const SHARDS: usize = 3;

/// `items` with a unique column checked at commit, so that a test can make one shard
/// refuse the COMMIT (or the PREPARE) while the others accept it.
const SCHEMA: &str = "CREATE TABLE items (id bigint PRIMARY KEY, tag text NOT NULL, \
                      u int, UNIQUE (u) DEFERRABLE INITIALLY DEFERRED)";

/// Recovery settings that settle an interrupted commit within seconds.
/// Opens a transaction through `client` that inserts one row tagged `tag` on each of
/// `shards` (ids from `from`), without committing it.
async fn write_on(client: &Client, shards: &[usize], tag: &str, from: i64) -> Result<()> {
    client.batch_execute("BEGIN").await?;
    for &shard in shards {
        let id = id_on(shard, SHARDS, from + shard as i64 * 1000);
        client
            .execute("INSERT INTO items (id, tag) VALUES ($1, $2)", &[&id, &tag])
            .await
            .with_context(|| format!("insert {id} on shard {shard}"))?;
    }
    Ok(())
}

/// The rows of `tag` are on all of `shards` (`committed`) or on none of them.
async fn check_all_or_none(
    cluster: &Cluster,
    tag: &str,
    shards: &[usize],
    committed: bool,
) -> Result<Vec<i64>> {
    let counts = rows_per_shard(cluster, tag).await?;
    let expected = if committed { 1 } else { 0 };
    for &shard in shards {
        ensure!(
            counts[shard] == expected,
            "{tag}: expected {expected} row(s) on every shard, found {counts:?}"
        );
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_writing_on_several_shards_commits_everywhere_or_nowhere() -> Result<()> {
    let cluster = Cluster::start(SHARDS, 0).await?;
    let proxy = two_phase_proxy(&cluster, FAST_RECOVERY).await?;
    let client = connect(proxy.addr, &User::app()).await?;
    client.batch_execute(SCHEMA).await?;
    let all = [0, 1, 2];

    // Happy path: committed on every shard, nothing left prepared.
    write_on(&client, &all, "happy", 1).await?;
    client.batch_execute("COMMIT").await?;
    check_all_or_none(&cluster, "happy", &all, true).await?;
    ensure!(
        prepared(&cluster).await? == 0,
        "a prepared transaction was left"
    );

    // A shard that only read is no participant of the atomic commit, and does not stop it.
    client.batch_execute("BEGIN").await?;
    client
        .query("SELECT * FROM items WHERE id = $1", &[&id_on(1, SHARDS, 1)])
        .await?;
    for shard in [0, 2] {
        let id = id_on(shard, SHARDS, 20_000 + shard as i64 * 1000);
        client
            .execute("INSERT INTO items (id, tag) VALUES ($1, 'reader')", &[&id])
            .await?;
    }
    client.batch_execute("COMMIT").await?;
    check_all_or_none(&cluster, "reader", &[0, 2], true).await?;

    // The coordinator (the lowest written shard) refuses its COMMIT: a deferred unique
    // check fails there, after the other shards were prepared. Nothing commits — also
    // not shard 1, which only a function called by a SELECT wrote on (the proxy asks the
    // server whether the transaction wrote there, so it is prepared, not just committed).
    client
        .batch_execute(
            "CREATE FUNCTION add_item(i bigint, t text, v int) RETURNS bigint LANGUAGE sql \
             AS $$ INSERT INTO items (id, tag, u) VALUES (i, t, v) RETURNING id $$",
        )
        .await?;
    client.batch_execute("BEGIN").await?;
    for (shard, u, n) in [(0, 7, 0), (0, 7, 1), (2, 9, 0)] {
        let id = id_on(shard, SHARDS, 30_000 + shard as i64 * 1000 + n * 100);
        client
            .execute(
                "INSERT INTO items (id, tag, u) VALUES ($1, 'coordinator refuses', $2)",
                &[&id, &u],
            )
            .await?;
    }
    let id = id_on(1, SHARDS, 31_000);
    client
        .batch_execute(&format!(
            "/* pgshard: shard=1 */ SELECT add_item({id}, 'coordinator refuses', 8)"
        ))
        .await?;
    let refused = client.batch_execute("COMMIT").await;
    match &refused {
        Err(e) => ensure!(sqlstate(e) == Some("23505"), "unexpected error: {e}"),
        Ok(()) => bail!("a COMMIT the coordinator refused succeeded"),
    }
    let counts = rows_per_shard(&cluster, "coordinator refuses").await?;
    ensure!(counts == [0, 0, 0], "coordinator refused: {counts:?}");

    // A participant refuses its PREPARE: nothing commits, the coordinator included.
    client.batch_execute("BEGIN").await?;
    for (shard, u, n) in [(0, 11, 0), (1, 12, 0), (2, 13, 0), (2, 13, 1)] {
        let id = id_on(shard, SHARDS, 40_000 + shard as i64 * 1000 + n * 100);
        client
            .execute(
                "INSERT INTO items (id, tag, u) VALUES ($1, 'participant refuses', $2)",
                &[&id, &u],
            )
            .await?;
    }
    let refused = client.batch_execute("COMMIT").await;
    match &refused {
        Err(e) => {
            ensure!(sqlstate(e) == Some("23505"), "unexpected error: {e}");
            let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
            ensure!(
                message.contains("shard 2"),
                "the error names no shard: {message}"
            );
        }
        Ok(()) => bail!("a COMMIT a participant refused succeeded"),
    }
    let counts = rows_per_shard(&cluster, "participant refuses").await?;
    ensure!(counts == [0, 0, 0], "participant refused: {counts:?}");

    // A multi-shard write outside a transaction commits atomically too.
    let ids: Vec<i64> = all
        .iter()
        .map(|&s| id_on(s, SHARDS, 50_000 + s as i64 * 1000))
        .collect();
    client
        .execute(
            &format!(
                "INSERT INTO items (id, tag) VALUES ({}, 'split'), ({}, 'split'), ({}, 'split')",
                ids[0], ids[1], ids[2]
            ),
            &[],
        )
        .await?;
    check_all_or_none(&cluster, "split", &all, true).await?;
    wait_settled(&cluster, Duration::from_secs(30)).await?;

    // With two_phase_commit = "off", a COMMIT that fails part-way says which shards
    // committed and which did not.
    let off = two_phase_proxy(&cluster, "two_phase_commit = \"off\"\n").await?;
    let client = connect(off.addr, &User::app()).await?;
    client.batch_execute("BEGIN").await?;
    for (shard, u, n) in [(0, 21, 0), (1, 22, 0), (1, 22, 1), (2, 23, 0)] {
        let id = id_on(shard, SHARDS, 60_000 + shard as i64 * 1000 + n * 100);
        client
            .execute(
                "INSERT INTO items (id, tag, u) VALUES ($1, 'one phase', $2)",
                &[&id, &u],
            )
            .await?;
    }
    let Err(e) = client.batch_execute("COMMIT").await else {
        bail!("a COMMIT shard 1 refused succeeded");
    };
    let message = e
        .as_db_error()
        .map(|d| d.message())
        .unwrap_or_default()
        .to_string();
    ensure!(sqlstate(&e) == Some("23505"), "unexpected error: {e}");
    for part in ["shard 1", "shard 0 committed", "shard 2 rolled back"] {
        ensure!(message.contains(part), "{part:?} missing from: {message}");
    }
    let counts = rows_per_shard(&cluster, "one phase").await?;
    ensure!(counts == [1, 0, 0], "one-phase commit: {counts:?}");
    off.shutdown().await;

    // A server with prepared transactions turned off: a commit that needs them is
    // rolled back everywhere, and the error names the setting.
    let node = cluster.shard(2).primary();
    node.client(&User::postgres())
        .await?
        .batch_execute("ALTER SYSTEM SET max_prepared_transactions = 0")
        .await?;
    node.restart().await?;
    let client = connect(proxy.addr, &User::app()).await?;
    write_on(&client, &all, "disabled", 70_000).await?;
    let Err(e) = client.batch_execute("COMMIT").await else {
        bail!("a COMMIT that needed a disabled PREPARE succeeded");
    };
    let message = e
        .as_db_error()
        .map(|d| d.message())
        .unwrap_or_default()
        .to_string();
    ensure!(sqlstate(&e) == Some("55000"), "unexpected error: {e}");
    for part in ["shard 2", "max_prepared_transactions", "two_phase_commit"] {
        ensure!(message.contains(part), "{part:?} missing from: {message}");
    }
    let counts = rows_per_shard(&cluster, "disabled").await?;
    ensure!(
        counts == [0, 0, 0],
        "disabled prepared transactions: {counts:?}"
    );
    // A transaction writing on one shard needs no PREPARE, there either.
    write_on(&client, &[2], "disabled, one shard", 71_000).await?;
    client.batch_execute("COMMIT").await?;
    check_all_or_none(&cluster, "disabled, one shard", &[2], true).await?;
    proxy.shutdown().await;
    Ok(())
}
