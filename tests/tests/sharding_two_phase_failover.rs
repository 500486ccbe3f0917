//! Two-phase commit across a failover: a shard's primary dies mid-commit and its
//! synchronous replica is promoted. The promoted replica holds what its primary had
//! prepared (PREPARE waits for the synchronous standby, as COMMIT does), and recovery,
//! woken by the change of primary, finishes it as the coordinator decided: the
//! transaction ends on both shards or on neither, and nothing stays prepared.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_proxy::two_phase::faults::{CommitStep, Fault};
use pgshard_tests::two_phase::id_on;
use pgshard_tests::{
    connect, sqlstate, start_failover_proxy_with, wait_for, Cluster, ClusterOptions, Node, User,
};
use tokio_postgres::Client;

const SHARDS: usize = 2;

const SETTINGS: &str = r#"
two_phase_commit_timeout = "2s"
two_phase_recovery_interval = "30s"
[[databases.sharded_tables]]
table = "items"
column = "id"
"#;

/// Opens a transaction through `client` that inserts one row tagged `tag` on each
/// shard, without committing it.
async fn write_everywhere(client: &Client, tag: &str, from: i64) -> Result<()> {
    client.batch_execute("BEGIN").await?;
    for shard in 0..SHARDS {
        let id = id_on(shard, SHARDS, from + shard as i64 * 1000);
        client
            .execute("INSERT INTO items (id, tag) VALUES ($1, $2)", &[&id, &tag])
            .await?;
    }
    Ok(())
}

/// Waits until `node` is a primary.
async fn wait_promoted(node: &Node) -> Result<()> {
    wait_for(
        "the replica's promotion",
        Duration::from_secs(60),
        || async { Ok((!node.is_in_recovery().await?).then_some(())) },
    )
    .await?;
    Ok(())
}

/// Waits until none of `primaries` has a prepared transaction left, and returns the rows
/// tagged `tag` on each.
async fn settle(primaries: &[&Node], tag: &str) -> Result<Vec<i64>> {
    wait_for(
        "every prepared transaction finished",
        Duration::from_secs(60),
        || async {
            let mut left = 0;
            for node in primaries {
                left += node
                    .query_one_i64("SELECT count(*) FROM pg_prepared_xacts")
                    .await?;
            }
            Ok((left == 0).then_some(()))
        },
    )
    .await?;
    let mut counts = Vec::new();
    for node in primaries {
        let sql = format!("SELECT count(*) FROM items WHERE tag = '{tag}'");
        counts.push(node.query_one_i64(&sql).await?);
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failing_over_mid_commit_leaves_all_or_nothing() -> Result<()> {
    let cluster = Cluster::start_with(ClusterOptions {
        shards: SHARDS,
        replicas_per_shard: 1,
        synchronous: true,
        ..ClusterOptions::default()
    })
    .await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let proxy = start_failover_proxy_with(&cluster, "", SETTINGS).await?;
    let faults = proxy.commit_faults("app").context("no database app")?;
    connect(proxy.addr, &User::app())
        .await?
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, tag text NOT NULL)")
        .await?;

    // Shard 1, a prepared participant, fails over after the coordinator (shard 0)
    // decided: the client hears COMMIT, and the promoted replica commits its part.
    let client = connect(proxy.addr, &User::app()).await?;
    write_everywhere(&client, "participant fails over", 1).await?;
    faults.arm(CommitStep::AfterPrepare, Fault::Pause);
    let commit = tokio::spawn(async move { client.batch_execute("COMMIT").await });
    tokio::time::timeout(Duration::from_secs(30), faults.reached())
        .await
        .context("the commit never reached the prepared step")?;
    cluster.shard(1).primary().kill().await?;
    faults.release();
    let answer = tokio::time::timeout(Duration::from_secs(60), commit)
        .await
        .context("COMMIT went unanswered")??;
    ensure!(answer.is_ok(), "the decided commit failed: {answer:?}");
    let promoted = cluster.shard(1).replica(0);
    wait_promoted(promoted).await?;
    let counts = settle(
        &[cluster.shard(0).primary(), promoted],
        "participant fails over",
    )
    .await?;
    ensure!(counts == [1, 1], "participant failed over: {counts:?}");
    eprintln!("AfterPrepare, shard 1 failed over: client got COMMIT; rows {counts:?}");

    // Shard 0, the coordinator, fails over before its COMMIT (the commit point): the
    // outcome is unknown to the client, and nothing commits.
    let client = connect(proxy.addr, &User::app()).await?;
    write_everywhere(&client, "coordinator fails over", 100_000).await?;
    faults.arm(CommitStep::AfterPrepare, Fault::Pause);
    let commit = tokio::spawn(async move { client.batch_execute("COMMIT").await });
    tokio::time::timeout(Duration::from_secs(30), faults.reached())
        .await
        .context("the commit never reached the prepared step")?;
    cluster.shard(0).primary().kill().await?;
    faults.release();
    let answer = tokio::time::timeout(Duration::from_secs(60), commit)
        .await
        .context("COMMIT went unanswered")??;
    let code = answer.as_ref().err().and_then(sqlstate).map(str::to_string);
    ensure!(
        code.as_deref() == Some("08007"),
        "a commit whose coordinator died answered {answer:?}"
    );
    let promoted0 = cluster.shard(0).replica(0);
    wait_promoted(promoted0).await?;
    let counts = settle(&[promoted0, promoted], "coordinator fails over").await?;
    ensure!(counts == [0, 0], "coordinator failed over: {counts:?}");
    eprintln!("AfterPrepare, shard 0 failed over: client got 08007; rows {counts:?}");
    proxy.shutdown().await;
    Ok(())
}
