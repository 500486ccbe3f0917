//! Failover on replication set up the ways users set it up, not only the way the node image
//! once named its nodes: standbys named by their own `application_name`, all streaming as
//! `walreceiver`, or sharing Debian's `cluster_name`, with `ANY 1 (*)`, `FIRST 1 (…)` or
//! asynchronous replication. In each, the primary is killed (SIGKILL) under a write load:
//! one replica is promoted, the other follows it, writes are served again within 5 s with
//! the proxy's default timings, and under synchronous replication no acknowledged write is
//! lost.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use pgshard_tests::{
    failover_bed_defaults, missing_writes, primary_name, promoted_replicas, wait_for,
    wait_other_replica_follows, ClusterOptions, StandbyNaming, WriteLoad,
};

/// How long writes may be refused after the primary dies.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);

async fn kill_primary_under_load(
    case: &str,
    naming: StandbyNaming,
    synchronous_standby_names: Option<&str>,
) -> Result<()> {
    let options = ClusterOptions {
        replicas_per_shard: 2,
        naming,
        synchronous_standby_names: synchronous_standby_names.map(str::to_string),
        ..ClusterOptions::default()
    };
    let (cluster, names, proxy) = failover_bed_defaults(options).await?;
    let load = WriteLoad::start(&proxy, 3);
    wait_for(
        "writes through the proxy",
        Duration::from_secs(20),
        || async { Ok((load.acknowledged() > 50).then_some(())) },
    )
    .await?;
    cluster.shard(0).primary().kill().await?;
    let killed = Instant::now();
    let before = load.acknowledged();
    wait_for(
        "writes to resume on a new primary",
        Duration::from_secs(30),
        || async { Ok((load.acknowledged() > before + 20).then_some(())) },
    )
    .await?;
    let resumed = killed.elapsed();
    let primary = primary_name(&proxy, &names).await?;
    let outcome = load.stop().await?;
    let lost = missing_writes(&cluster, &primary, &outcome.acknowledged).await?;
    eprintln!(
        "failover setup {case}: writes served again {:.2}s after the kill, on {primary}; \
         {} acknowledged, {} lost",
        resumed.as_secs_f64(),
        outcome.acknowledged.len(),
        lost.len()
    );
    ensure!(
        promoted_replicas(&cluster).await? == vec![primary.clone()],
        "{case}: exactly one replica, the one writes go to ({primary}), is promoted"
    );
    wait_other_replica_follows(&cluster, &primary).await?;
    if let Some(names) = synchronous_standby_names {
        // The repointed replica streams under its old name, so the new primary's commits
        // wait for it again (nothing fell back to asynchronous replication).
        let node = cluster
            .node(&primary)
            .ok_or_else(|| anyhow::anyhow!("no node {primary}"))?;
        wait_for(
            "a synchronous standby on the new primary",
            Duration::from_secs(20),
            || async {
                let sync: i64 = node
                    .query_one(
                        "SELECT count(*) FROM pg_stat_replication \
                         WHERE sync_state IN ('sync', 'quorum')",
                    )
                    .await?;
                Ok((sync == 1).then_some(()))
            },
        )
        .await?;
        let kept: String = node
            .query_one("SELECT current_setting('synchronous_standby_names')")
            .await?;
        ensure!(
            kept == names,
            "{case}: synchronous_standby_names became {kept:?}"
        );
        ensure!(
            lost.is_empty(),
            "{case}: {} acknowledged writes lost under synchronous replication, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    ensure!(
        resumed <= RECOVERY_LIMIT,
        "{case}: writes were refused for {resumed:?} (limit {RECOVERY_LIMIT:?})"
    );
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distinct_application_name_per_standby_and_no_cluster_name() -> Result<()> {
    kill_primary_under_load("(a)", StandbyNaming::ApplicationName, Some("ANY 1 (*)")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_every_standby_streams_as_walreceiver() -> Result<()> {
    kill_primary_under_load("(b)", StandbyNaming::Walreceiver, Some("ANY 1 (*)")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_every_node_shares_debians_cluster_name() -> Result<()> {
    let naming = StandbyNaming::SharedClusterName("15/main".to_string());
    kill_primary_under_load("(c)", naming, Some("ANY 1 (*)")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_priority_commit_first_1() -> Result<()> {
    // Names with a hyphen must be double-quoted, or PostgreSQL refuses the setting.
    let names = r#"FIRST 1 ("s0-replica1", "s0-replica2")"#;
    kill_primary_under_load("(d)", StandbyNaming::ApplicationName, Some(names)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_quorum_commit_any_1_of_walreceivers_and_names() -> Result<()> {
    // A quorum over standbys of one shared name: ambiguity must not block a promotion
    // that every reachable standby proves safe.
    let naming = StandbyNaming::SharedClusterName("main".to_string());
    kill_primary_under_load("(e)", naming, Some("ANY 1 (main)")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_asynchronous_replication() -> Result<()> {
    kill_primary_under_load("(f)", StandbyNaming::Walreceiver, None).await
}
