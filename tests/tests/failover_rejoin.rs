//! `rejoin_command`: after a failover, the old primary that comes back on the old timeline
//! is fenced, the proxy runs the configured command once (here `pgshard-rejoin` inside
//! the node's container), and the node streams from the new primary again with every
//! acknowledged write, and serves reads.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pgshard_tests::{
    connect, missing_writes, node_names, prepare_ledger, primary_name, start_failover_proxy,
    wait_for, wait_other_replica_follows, Cluster, ClusterOptions, ScratchDir, User, WriteLoad,
};

/// A script that maps the relay addresses the proxy knows the nodes by (`%h:%p`,
/// `%H:%P`) to container names, and runs `pgshard-rejoin` in the fenced node's container
/// against the primary's host name on the cluster network. Each run is appended to
/// `runs` in the same directory.
fn rejoin_script(cluster: &Cluster, dir: &ScratchDir) -> Result<std::path::PathBuf> {
    let cases: String = cluster
        .shard(0)
        .nodes()
        .map(|n| format!("    {}) echo {} ;;\n", n.proxy_addr(), n.container_name()))
        .collect();
    let runs = dir.file("runs");
    let script = format!(
        "#!/bin/sh\n\
         name() {{\n  case \"$1\" in\n{cases}    *) echo \"unknown node $1\" >&2; exit 2 ;;\n  esac\n}}\n\
         node=$(name \"$1\") || exit 2\n\
         primary=$(name \"$2\") || exit 2\n\
         echo \"$1 $2\" >> {}\n\
         exec docker exec \"$node\" pgshard-rejoin \"$primary\" 5432\n",
        runs.display()
    );
    let path = dir.file("rejoin.sh");
    std::fs::write(&path, script).context("writing the rejoin script")?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_old_primary_is_rejoined_by_the_rejoin_command() -> Result<()> {
    let cluster = Cluster::start_with(ClusterOptions {
        replicas_per_shard: 2,
        ..ClusterOptions::default()
    })
    .await?;
    prepare_ledger(&cluster).await?;
    let names = node_names(&cluster).await?;
    let dir = ScratchDir::new("rejoin")?;
    let script = rejoin_script(&cluster, &dir)?;
    let extra = format!(
        "rejoin_command = \"sh {} %h:%p %H:%P\"\nrejoin_timeout = \"2min\"\n",
        script.display()
    );
    let proxy = start_failover_proxy(&cluster, &extra).await?;

    // SIGKILL the primary under a write load; a replica takes over.
    let load = WriteLoad::start(&proxy, 3);
    wait_for(
        "writes through the proxy",
        Duration::from_secs(20),
        || async { Ok((load.acknowledged() > 50).then_some(())) },
    )
    .await?;
    let old = cluster.shard(0).primary();
    old.kill().await?;
    let before = load.acknowledged();
    wait_for(
        "writes to resume on a new primary",
        Duration::from_secs(60),
        || async { Ok((load.acknowledged() > before + 50).then_some(())) },
    )
    .await?;
    let outcome = load.stop().await?;
    let primary = primary_name(&proxy, &names).await?;
    ensure!(
        primary.starts_with("s0-replica"),
        "writes went to {primary}"
    );
    wait_other_replica_follows(&cluster, &primary).await?;
    let new = cluster.node(&primary).context("the new primary")?;
    eprintln!(
        "rejoin: {} writes acknowledged, {} failed; new primary {primary}",
        outcome.acknowledged.len(),
        outcome.failed
    );

    // The old primary comes back on the old timeline: fenced, then rejoined by the command.
    old.start().await?;
    let restarted = Instant::now();
    wait_for(
        "the old primary to stream from the new one",
        Duration::from_secs(120),
        || async {
            let streams = new
                .streaming_replicas()
                .await?
                .contains(&"s0-primary".to_string());
            Ok((streams && old.is_in_recovery().await.unwrap_or(false)).then_some(()))
        },
    )
    .await?;
    let streaming = restarted.elapsed();
    eprintln!("rejoin: the old primary streams again {streaming:?} after its restart");

    // Every acknowledged write reaches it.
    wait_for(
        "every acknowledged write on the rejoined node",
        Duration::from_secs(30),
        || async {
            let missing = missing_writes(&cluster, "s0-primary", &outcome.acknowledged).await?;
            Ok(missing.is_empty().then_some(()))
        },
    )
    .await?;

    // The fence is lifted: reads through the proxy reach it again.
    let reads_back = wait_for(
        "a read through the proxy served by the rejoined node",
        Duration::from_secs(30),
        || async {
            let Ok(client) = connect(proxy.addr, &User::app()).await else {
                return Ok(None);
            };
            let row = client
                .query_one("SELECT inet_server_addr()::text", &[])
                .await;
            let addr: Option<String> = row.ok().and_then(|r| r.try_get(0).ok());
            let on_it = addr.and_then(|a| names.get(&a).cloned()).as_deref() == Some("s0-primary");
            Ok(on_it.then_some(()))
        },
    )
    .await;
    reads_back?;
    eprintln!(
        "rejoin: reads reach it {:?} after its restart",
        restarted.elapsed()
    );

    // The command ran once for this fencing event.
    let runs = std::fs::read_to_string(dir.file("runs")).unwrap_or_default();
    ensure!(runs.lines().count() == 1, "rejoin_command runs: {runs:?}");
    ensure!(
        !new.is_in_recovery().await?,
        "the new primary went into recovery"
    );
    proxy.shutdown().await;
    Ok(())
}
