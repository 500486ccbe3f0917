//! Two-phase commit under faults: the proxy dies at each step of a commit, a
//! participant's primary dies at each step, many clients commit at once. Every
//! transaction must end committed on every shard it wrote on or on none, the client's
//! answer must not contradict that, and once recovery has run nothing is left in
//! `pg_prepared_xacts` nor in the decision table.
//!
//! The proxy runs in-process, so "dying" is a fault point armed through its API: the
//! commit stops at the step and every server connection of the session is closed, as a
//! crash would close them. Every check reads each shard's primary directly.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_proxy::two_phase::faults::{CommitStep, Fault};
use pgshard_tests::two_phase::{
    id_on, prepared, rows_per_shard, two_phase_proxy, wait_settled, FAST_RECOVERY,
};
use pgshard_tests::{connect, Cluster, User};
use tokio_postgres::Client;

const SHARDS: usize = 3;
const ALL: [usize; SHARDS] = [0, 1, 2];

const SCHEMA: &str = "CREATE TABLE items (id bigint PRIMARY KEY, tag text NOT NULL)";

/// Recovery settings that settle an interrupted commit within seconds.
/// Recovery that only runs once, at start: a commit interrupted later is left for
/// another proxy to settle.
const NO_RECOVERY: &str = "two_phase_recovery_interval = \"1h\"\n";

/// Opens a transaction through `client` that inserts one row tagged `tag` on every
/// shard (ids from `from`), without committing it.
async fn write_everywhere(client: &Client, tag: &str, from: i64) -> Result<()> {
    client.batch_execute("BEGIN").await?;
    for shard in ALL {
        let id = id_on(shard, SHARDS, from + shard as i64 * 1000);
        client
            .execute("INSERT INTO items (id, tag) VALUES ($1, $2)", &[&id, &tag])
            .await
            .with_context(|| format!("insert {id} on shard {shard}"))?;
    }
    Ok(())
}

/// The end state of one transaction: its rows on every shard (`Some(true)`), on none
/// (`Some(false)`), or split (`None`, the failure this feature exists to prevent).
fn all_or_none(counts: &[i64]) -> Option<bool> {
    if counts.iter().all(|&c| c == 1) {
        Some(true)
    } else if counts.iter().all(|&c| c == 0) {
        Some(false)
    } else {
        None
    }
}

/// The proxy dies at each step of the commit; a second proxy, which never saw the
/// transaction, settles it from what the shards hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_dying_mid_commit_leaves_all_or_nothing() -> Result<()> {
    let cluster = Cluster::start(SHARDS, 0).await?;
    {
        let setup = two_phase_proxy(&cluster, NO_RECOVERY).await?;
        connect(setup.addr, &User::app())
            .await?
            .batch_execute(SCHEMA)
            .await?;
        setup.shutdown().await;
    }
    // The step the proxy dies after, and whether the transaction must end committed:
    // before the coordinator's COMMIT nothing is decided, after it everything commits.
    // Also how many participants the crash leaves prepared, for the second proxy.
    let steps = [
        (CommitStep::BeforePrepare, false, 0),
        (CommitStep::AfterPrepare, false, 2),
        (CommitStep::AfterDecision, true, 2),
        (CommitStep::AfterFirstCommitPrepared, true, 1),
    ];
    let mut report = Vec::new();
    for (i, (step, committed, left_prepared)) in steps.into_iter().enumerate() {
        let tag = format!("crash {step:?}");
        let dying = two_phase_proxy(&cluster, NO_RECOVERY).await?;
        // Its recovery passes at start (again once the monitors find the primaries)
        // are over before the transaction: what the crash leaves is the second
        // proxy's to settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let faults = dying.commit_faults("app").context("no database app")?;
        let client = connect(dying.addr, &User::app()).await?;
        write_everywhere(&client, &tag, 100_000 * (i as i64 + 1)).await?;
        faults.arm(step, Fault::Crash);
        let answer = client.batch_execute("COMMIT").await;
        ensure!(
            answer.is_err(),
            "{tag}: the client heard COMMIT from a dead proxy"
        );
        dying.shutdown().await;
        let prepared_before = prepared(&cluster).await?;
        ensure!(
            prepared_before == left_prepared,
            "{tag}: {prepared_before} prepared after the crash, expected {left_prepared}"
        );

        let settling = two_phase_proxy(&cluster, FAST_RECOVERY).await?;
        wait_settled(&cluster, Duration::from_secs(60)).await?;
        settling.shutdown().await;
        let counts = rows_per_shard(&cluster, &tag).await?;
        ensure!(
            all_or_none(&counts) == Some(committed),
            "{tag}: expected {} on every shard, found {counts:?}",
            if committed { "the rows" } else { "no rows" }
        );
        report.push(format!(
            "{step:?}: {prepared_before} prepared after the crash; rows per shard {counts:?}"
        ));
    }
    eprintln!("end states:\n{}", report.join("\n"));
    Ok(())
}

/// A participant's primary is killed (SIGKILL) while the commit waits at each step, and
/// started again later: the transaction ends on all shards or none, as the client was
/// told when it was told anything definite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_dying_mid_commit_leaves_all_or_nothing() -> Result<()> {
    let cluster = Cluster::start(SHARDS, 0).await?;
    let proxy = two_phase_proxy(&cluster, FAST_RECOVERY).await?;
    connect(proxy.addr, &User::app())
        .await?
        .batch_execute(SCHEMA)
        .await?;
    let faults = proxy.commit_faults("app").context("no database app")?;
    // (step, shard killed, end state): shard 0 is the coordinator.
    let cases = [
        (CommitStep::BeforePrepare, 0, false),
        (CommitStep::BeforePrepare, 1, false),
        (CommitStep::AfterPrepare, 0, false),
        (CommitStep::AfterPrepare, 2, true),
        (CommitStep::AfterDecision, 0, true),
        (CommitStep::AfterDecision, 1, true),
        (CommitStep::AfterFirstCommitPrepared, 2, true),
    ];
    let mut report = Vec::new();
    for (i, (step, victim, committed)) in cases.into_iter().enumerate() {
        let tag = format!("kill shard {victim} {step:?}");
        let client = connect(proxy.addr, &User::app()).await?;
        write_everywhere(&client, &tag, 1_000_000 * (i as i64 + 1)).await?;
        faults.arm(step, Fault::Pause);
        let commit = tokio::spawn(async move { client.batch_execute("COMMIT").await });
        tokio::time::timeout(Duration::from_secs(30), faults.reached())
            .await
            .with_context(|| format!("{tag}: the commit never reached its step"))?;
        let node = cluster.shard(victim).primary();
        node.kill().await?;
        faults.release();
        let answer = tokio::time::timeout(Duration::from_secs(60), commit)
            .await
            .with_context(|| format!("{tag}: COMMIT went unanswered"))??;
        node.start().await?;
        wait_settled(&cluster, Duration::from_secs(60)).await?;
        let counts = rows_per_shard(&cluster, &tag).await?;
        let end = all_or_none(&counts);
        ensure!(
            end == Some(committed),
            "{tag}: expected {} on every shard, found {counts:?} (client: {answer:?})",
            if committed { "the rows" } else { "no rows" }
        );
        // An acknowledged COMMIT is committed everywhere.
        ensure!(
            answer.is_err() || committed,
            "{tag}: the client heard COMMIT"
        );
        report.push(format!(
            "{step:?}, shard {victim} killed: client {}; rows per shard {counts:?}",
            match &answer {
                Ok(()) => "got COMMIT".to_string(),
                Err(e) => format!(
                    "got {}",
                    pgshard_tests::sqlstate(e).unwrap_or("a closed connection")
                ),
            }
        ));
    }
    eprintln!("end states:\n{}", report.join("\n"));
    proxy.shutdown().await;
    Ok(())
}

/// Many clients commit transactions over every shard at once: every acknowledged
/// transaction is on every shard, the others on none, and nothing stays prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_each_all_or_nothing() -> Result<()> {
    const CLIENTS: i64 = 6;
    const TRANSACTIONS: i64 = 20;
    let cluster = Cluster::start(SHARDS, 0).await?;
    let proxy = two_phase_proxy(&cluster, FAST_RECOVERY).await?;
    connect(proxy.addr, &User::app())
        .await?
        .batch_execute(SCHEMA)
        .await?;
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let addr = proxy.addr;
        writers.push(tokio::spawn(async move {
            let client = connect(addr, &User::app()).await?;
            let mut acknowledged = Vec::new();
            for n in 0..TRANSACTIONS {
                let tag = format!("c{c}-{n}");
                write_everywhere(&client, &tag, (c * TRANSACTIONS + n) * 10_000).await?;
                if client.batch_execute("COMMIT").await.is_ok() {
                    acknowledged.push(tag);
                }
            }
            Ok::<_, anyhow::Error>(acknowledged)
        }));
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await??);
    }
    ensure!(
        acknowledged.len() as i64 == CLIENTS * TRANSACTIONS,
        "only {} of {} commits acknowledged",
        acknowledged.len(),
        CLIENTS * TRANSACTIONS
    );
    for tag in &acknowledged {
        let counts = rows_per_shard(&cluster, tag).await?;
        ensure!(counts == [1, 1, 1], "{tag}: {counts:?}");
    }
    let total = cluster.shards().len() as i64 * CLIENTS * TRANSACTIONS;
    let mut rows = 0;
    for shard in cluster.shards() {
        rows += shard
            .primary()
            .query_one_i64("SELECT count(*) FROM items")
            .await?;
    }
    ensure!(rows == total, "{rows} rows, expected {total}");
    wait_settled(&cluster, Duration::from_secs(60)).await?;
    proxy.shutdown().await;
    Ok(())
}
