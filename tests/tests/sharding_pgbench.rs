//! pgbench on a sharded database, its tables sharded by their ids: `pgbench -i` builds
//! and loads them through the proxy (COPY … WITH (FREEZE ON) without a column list,
//! VACUUM, primary keys), and the TPC-B-like run in every query mode commits every
//! transaction, with every balance adding up to the history across both shards.

use std::time::Duration;

use anyhow::{ensure, Result};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{connect, run_tool, start_sharded_proxy, Cluster, User};

const CLIENTS: u32 = 4;
const TRANSACTIONS_PER_CLIENT: u32 = 40;

/// A proxy over both shards of `cluster` with pgbench's tables sharded by their ids.
async fn proxy(cluster: &Cluster) -> Result<ProxyHandle> {
    let tables = [
        ("pgbench_accounts", "aid"),
        ("pgbench_branches", "bid"),
        ("pgbench_tellers", "tid"),
        ("pgbench_history", "aid"),
    ];
    Ok(start_sharded_proxy(cluster, &tables, 8).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs_on_a_sharded_database() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster).await?;
    let init = run_tool(
        "pgbench",
        proxy.addr,
        &User::app(),
        &["-i", "-s", "1", "-q"],
        Duration::from_secs(180),
    )
    .await?;
    ensure!(init.status.success(), "pgbench -i: {}", init.describe());

    // Every account once, spread over both shards.
    let mut per_shard = Vec::new();
    for shard in cluster.shards() {
        let n: i64 = shard
            .primary()
            .query_one("SELECT count(*) FROM pgbench_accounts")
            .await?;
        per_shard.push(n);
    }
    ensure!(
        per_shard.iter().sum::<i64>() == 100_000 && per_shard.iter().all(|&n| n > 0),
        "accounts per shard: {per_shard:?}"
    );

    for mode in ["simple", "extended", "prepared"] {
        let clients = CLIENTS.to_string();
        let transactions = TRANSACTIONS_PER_CLIENT.to_string();
        let run = run_tool(
            "pgbench",
            proxy.addr,
            &User::app(),
            &[
                "-M",
                mode,
                "-c",
                &clients,
                "-j",
                &clients,
                "-t",
                &transactions,
            ],
            Duration::from_secs(180),
        )
        .await?;
        let expected = format!(
            "number of transactions actually processed: {}/{}",
            CLIENTS * TRANSACTIONS_PER_CLIENT,
            CLIENTS * TRANSACTIONS_PER_CLIENT
        );
        ensure!(
            run.status.success() && run.stdout.contains(&expected),
            "pgbench -M {mode}: {}",
            run.describe()
        );
        eprintln!(
            "sharded pgbench -M {mode}: {}",
            run.stdout
                .lines()
                .find(|line| line.starts_with("tps"))
                .unwrap_or("")
        );
        // pgbench truncates the history before each run (it vacuums without -n); the
        // balances add up every run's deltas.
        let client = connect(proxy.addr, &User::app()).await?;
        let mut sums = Vec::new();
        for sql in [
            "SELECT count(*) FROM pgbench_history",
            "SELECT sum(abalance) FROM pgbench_accounts",
            "SELECT sum(tbalance) FROM pgbench_tellers",
            "SELECT sum(bbalance) FROM pgbench_branches",
        ] {
            let row = client.query_one(sql, &[]).await?;
            sums.push(row.get::<_, Option<i64>>(0).unwrap_or(0));
        }
        ensure!(
            sums[0] == i64::from(CLIENTS * TRANSACTIONS_PER_CLIENT),
            "{mode}: {} history rows",
            sums[0]
        );
        ensure!(
            sums[1] == sums[2] && sums[2] == sums[3],
            "{mode}: balances of accounts, tellers, branches differ: {:?}",
            &sums[1..]
        );
    }
    proxy.shutdown().await;
    Ok(())
}
