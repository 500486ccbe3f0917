//! pgbench through the proxy: every query mode (simple, extended, prepared) in both pool
//! modes, several clients at once, and no transaction may fail.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_config::PoolMode;
use pgshard_tests::{run_tool, Cluster, ProxyOptions, TestProxy, ToolOutput, User};

const CLIENTS: u32 = 8;
const TRANSACTIONS_PER_CLIENT: u32 = 60;

/// Initializes pgbench's tables directly on the primary, then runs every query mode
/// through a proxy in `pool_mode` with a pool of `pool_size`.
async fn pgbench_in_every_query_mode(pool_mode: PoolMode, pool_size: u32) -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = cluster.shard(0).primary();
    let init = run_tool(
        "pgbench",
        primary.addr(),
        &User::app(),
        &["-i", "-s", "1", "-q"],
        Duration::from_secs(120),
    )
    .await?;
    ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        init.describe()
    );
    let proxy = TestProxy::start(
        primary,
        ProxyOptions {
            pool_mode,
            pool_size,
            ..ProxyOptions::default()
        },
    )
    .await?;

    let mut history = 0;
    for mode in ["simple", "extended", "prepared"] {
        let clients = CLIENTS.to_string();
        let transactions = TRANSACTIONS_PER_CLIENT.to_string();
        // One thread per client: pgbench prepares each statement with a blocking
        // PQprepare on its first use, which stalls every client of that thread. With
        // several clients per thread, the stalled thread's other clients can sit inside
        // transactions holding all pooled connections the PQprepare waits for.
        let args = [
            "-n",
            "-M",
            mode,
            "-c",
            &clients,
            "-j",
            &clients,
            "-t",
            &transactions,
        ];
        let run = run_tool(
            "pgbench",
            proxy.addr(),
            &User::app(),
            &args,
            Duration::from_secs(180),
        )
        .await?;
        ensure!(
            run.status.success(),
            "pgbench -M {mode} failed: {}",
            run.describe()
        );
        let expected = CLIENTS * TRANSACTIONS_PER_CLIENT;
        let processed = report_value(&run, "number of transactions actually processed")?;
        assert_eq!(
            processed,
            format!("{expected}/{expected}"),
            "-M {mode}: {}",
            run.describe()
        );
        let failed = report_value(&run, "number of failed transactions")?;
        assert!(
            failed.starts_with("0 "),
            "-M {mode}: failed transactions: {}",
            run.describe()
        );
        // Every transaction wrote its row of history on the server.
        history += i64::from(expected);
        assert_eq!(
            primary
                .query_one_i64("SELECT count(*) FROM pgbench_history")
                .await?,
            history,
            "-M {mode}"
        );
    }
    Ok(())
}

/// The value of a `name: value` line of pgbench's report.
fn report_value(run: &ToolOutput, name: &str) -> Result<String> {
    run.stdout
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
        .with_context(|| format!("no \"{name}\" in pgbench's report: {}", run.describe()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_through_transaction_pooling_fails_no_transaction() -> Result<()> {
    // Fewer server connections than clients: they are shared between transactions.
    pgbench_in_every_query_mode(PoolMode::Transaction, 3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_through_session_pooling_fails_no_transaction() -> Result<()> {
    pgbench_in_every_query_mode(PoolMode::Session, CLIENTS).await
}
