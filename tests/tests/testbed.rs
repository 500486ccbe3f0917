//! The test bed itself: clusters start replicated, shards are independent, and the faults the
//! harness injects do what they say. Later suites build on these guarantees.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use futures::FutureExt;
use pgshard_tests::{connect, wait_for, Cluster, ClusterOptions, User, TEST_LABEL};
use testcontainers::bollard::query_parameters::ListContainersOptions;

/// Generous bound for anything replication has to carry; it normally takes milliseconds.
const REPLICATION: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_on_the_primary_shows_up_on_every_replica() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let shard = cluster.shard(0);
    ensure!(
        !shard.primary().is_in_recovery().await?,
        "s0-primary is a standby"
    );

    shard
        .primary()
        .execute(
            "CREATE TABLE greetings (id int PRIMARY KEY, text text);
             INSERT INTO greetings VALUES (1, 'hello')",
        )
        .await?;

    for replica in shard.replicas() {
        ensure!(
            replica.is_in_recovery().await?,
            "{} is not a standby",
            replica.name()
        );
        let what = format!("the row to reach {}", replica.name());
        let text: String = wait_for(&what, REPLICATION, || async {
            let client = replica.client(&User::app()).await?;
            let row = client
                .query_opt("SELECT text FROM greetings WHERE id = 1", &[])
                .await;
            // The table itself may not have arrived yet either.
            Ok(row.ok().flatten().map(|row| row.get(0)))
        })
        .await?;
        assert_eq!(text, "hello");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_shard_cluster_has_two_independent_primaries() -> Result<()> {
    let cluster = Cluster::start(2, 1).await?;
    let (s0, s1) = (cluster.shard(0).primary(), cluster.shard(1).primary());
    ensure!(!s0.is_in_recovery().await?, "s0-primary is a standby");
    ensure!(!s1.is_in_recovery().await?, "s1-primary is a standby");
    assert_ne!(s0.addr(), s1.addr());

    s0.execute("CREATE TABLE only_on_s0 (id int); INSERT INTO only_on_s0 VALUES (1), (2)")
        .await?;
    let tables_on_s1 = s1
        .query_one_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'only_on_s0'")
        .await?;
    assert_eq!(
        tables_on_s1, 0,
        "a table created on shard 0 appeared on shard 1"
    );

    // The same table name on both shards holds different rows.
    s1.execute("CREATE TABLE only_on_s0 (id int); INSERT INTO only_on_s0 VALUES (3)")
        .await?;
    assert_eq!(
        s0.query_one_i64("SELECT count(*) FROM only_on_s0").await?,
        2
    );
    assert_eq!(
        s1.query_one_i64("SELECT count(*) FROM only_on_s0").await?,
        1
    );

    // Two separate initdb runs: two different database system identifiers.
    let system_id = "SELECT system_identifier FROM pg_control_system()";
    let id0: i64 = s0
        .client(&User::postgres())
        .await?
        .query_one(system_id, &[])
        .await?
        .get(0);
    let id1: i64 = s1
        .client(&User::postgres())
        .await?
        .query_one(system_id, &[])
        .await?
        .get(0);
    assert_ne!(id0, id1);

    // Each replica follows its own primary.
    for shard in cluster.shards() {
        let streaming = shard.primary().streaming_replicas().await?;
        assert_eq!(streaming, vec![format!("s{}-replica1", shard.index())]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_reported_down_and_comes_back_streaming() -> Result<()> {
    let cluster = Cluster::start(1, 2).await?;
    let shard = cluster.shard(0);
    let (killed, survivor) = (shard.replica(0), shard.replica(1));
    ensure!(
        killed.is_up().await,
        "{} is not up before the kill",
        killed.name()
    );

    killed.kill().await?;
    ensure!(
        !killed.is_up().await,
        "{} is still reported up after SIGKILL",
        killed.name()
    );
    wait_for(
        "the killed replica to leave pg_stat_replication",
        REPLICATION,
        || async {
            let streaming = shard.primary().streaming_replicas().await?;
            Ok((streaming == [survivor.name()]).then_some(()))
        },
    )
    .await?;

    // It restarts from its own data directory (perhaps on a new published port) and
    // resumes streaming, including what it missed.
    shard
        .primary()
        .execute("CREATE TABLE missed (id int); INSERT INTO missed VALUES (1)")
        .await?;
    killed.start().await.context("restart the killed replica")?;
    ensure!(
        killed.is_up().await,
        "{} is not up after its restart",
        killed.name()
    );
    shard.wait_streaming(REPLICATION).await?;
    wait_for("the replica to catch up", REPLICATION, || async {
        let rows = killed.query_one_i64("SELECT count(*) FROM missed").await;
        Ok(rows.ok().filter(|rows| *rows == 1))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stopped_or_restarted_node_is_down_then_back() -> Result<()> {
    let cluster = Cluster::start(1, 1).await?;
    let (primary, replica) = (cluster.shard(0).primary(), cluster.shard(0).replica(0));

    replica.pause().await?;
    ensure!(!replica.is_up().await, "a paused node is reported up");
    replica.unpause().await?;
    ensure!(replica.is_up().await, "an unpaused node is reported down");

    replica.stop().await?;
    ensure!(!replica.is_up().await, "a stopped node is reported up");
    primary
        .execute("CREATE TABLE while_stopped (id int); INSERT INTO while_stopped VALUES (1)")
        .await?;
    replica.start().await?;
    cluster.wait_streaming(REPLICATION).await?;
    wait_for("the restarted replica to catch up", REPLICATION, || async {
        Ok(replica
            .query_one_i64("SELECT count(*) FROM while_stopped")
            .await
            .ok())
    })
    .await?;

    // A restart may move the published port; the relay follows it.
    primary.restart().await?;
    ensure!(
        primary.is_up().await,
        "the restarted primary is reported down"
    );
    let through_relay = connect(primary.proxy_addr(), &User::app()).await?;
    let rows: i64 = through_relay
        .query_one("SELECT count(*) FROM while_stopped", &[])
        .await?
        .get(0);
    assert_eq!(rows, 1);
    cluster.wait_streaming(REPLICATION).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cuts_and_heals_the_proxy_link_while_replication_flows() -> Result<()> {
    let cluster = Cluster::start(1, 1).await?;
    let (primary, replica) = (cluster.shard(0).primary(), cluster.shard(0).replica(0));
    let relay = primary.relay();
    let app = User::app();
    let relayed = || connect(primary.proxy_addr(), &app);
    let through_relay = relayed().await?;
    assert_eq!(
        through_relay
            .query_one("SELECT 1", &[])
            .await?
            .get::<_, i32>(0),
        1
    );

    // Refuse: the open relayed connection breaks and new ones are refused at once.
    relay.cut().await?;
    let broken = tokio::time::timeout(
        Duration::from_secs(5),
        through_relay.query_one("SELECT 1", &[]),
    )
    .await
    .context("a query on a cut connection hung instead of failing")?;
    ensure!(broken.is_err(), "a query on a cut connection succeeded");
    let refused = tokio::time::timeout(Duration::from_secs(5), relayed())
        .await
        .context("connecting to a cut relay hung instead of being refused")?;
    ensure!(refused.is_err(), "connecting to a cut relay succeeded");

    // The node itself is fine: it takes writes directly and its replica keeps streaming.
    primary
        .execute("CREATE TABLE during_cut (id int); INSERT INTO during_cut VALUES (1)")
        .await?;
    wait_for(
        "the write made during the cut to replicate",
        REPLICATION,
        || async {
            Ok(replica
                .query_one_i64("SELECT count(*) FROM during_cut")
                .await
                .ok())
        },
    )
    .await?;
    assert_eq!(
        primary.streaming_replicas().await?,
        vec![replica.name().to_string()]
    );

    relay.heal().await?;
    let healed = relayed().await?;
    assert_eq!(
        healed
            .query_one("SELECT count(*) FROM during_cut", &[])
            .await?
            .get::<_, i64>(0),
        1
    );

    // Blackhole: the open connection goes silent and new ones are accepted but never answered.
    relay.blackhole().await?;
    let silent =
        tokio::time::timeout(Duration::from_secs(2), healed.query_one("SELECT 1", &[])).await;
    ensure!(silent.is_err(), "a blackholed connection answered");
    let swallowed = tokio::time::timeout(Duration::from_secs(2), relayed()).await;
    ensure!(
        swallowed.is_err(),
        "a blackholed relay answered a new connection"
    );
    primary.execute("INSERT INTO during_cut VALUES (2)").await?;
    wait_for(
        "the write made during the blackhole to replicate",
        REPLICATION,
        || async {
            let rows = replica
                .query_one_i64("SELECT count(*) FROM during_cut")
                .await;
            Ok(rows.ok().filter(|rows| *rows == 2))
        },
    )
    .await?;

    relay.heal().await?;
    let after = relayed().await?;
    assert_eq!(
        after
            .query_one("SELECT count(*) FROM during_cut", &[])
            .await?
            .get::<_, i64>(0),
        2
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_primary_waits_for_a_standby_to_commit() -> Result<()> {
    let cluster = Cluster::start_with(ClusterOptions {
        replicas_per_shard: 2,
        synchronous: true,
        ..ClusterOptions::default()
    })
    .await?;
    let shard = cluster.shard(0);
    let primary = shard.primary();
    let setting: String = primary.query_one("SHOW synchronous_standby_names").await?;
    assert_eq!(setting, "ANY 1 (*)");
    let quorum = primary
        .query_one_i64("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'")
        .await?;
    assert_eq!(quorum, 2);
    primary.execute("CREATE TABLE acked (id int)").await?;

    // With no standby left, a commit waits...
    for replica in shard.replicas() {
        replica.kill().await?;
    }
    let writer = primary.client(&User::app()).await?;
    let mut commit =
        tokio::spawn(async move { writer.execute("INSERT INTO acked VALUES (1)", &[]).await });
    let waited = tokio::time::timeout(Duration::from_secs(3), &mut commit).await;
    ensure!(
        waited.is_err(),
        "a synchronous commit returned with every standby down"
    );

    // ...until one standby is back and has the commit.
    shard.replica(0).start().await?;
    let inserted = tokio::time::timeout(REPLICATION, commit)
        .await
        .context("the commit still waits with a standby back")???;
    assert_eq!(inserted, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_the_network_catches_up_when_reconnected() -> Result<()> {
    let cluster = Cluster::start_with(ClusterOptions {
        replicas_per_shard: 1,
        // Notice the partition in seconds rather than the default minute.
        extra_conf: vec![
            "wal_sender_timeout = 3s".to_string(),
            "wal_receiver_timeout = 3s".to_string(),
            "wal_retrieve_retry_interval = 1s".to_string(),
        ],
        ..ClusterOptions::default()
    })
    .await?;
    let (primary, replica) = (cluster.shard(0).primary(), cluster.shard(0).replica(0));

    replica.disconnect_network().await?;
    wait_for(
        "the primary to notice the partition",
        REPLICATION,
        || async { Ok(primary.streaming_replicas().await?.is_empty().then_some(())) },
    )
    .await?;
    primary
        .execute("CREATE TABLE during_partition (id int); INSERT INTO during_partition VALUES (1)")
        .await?;

    replica.connect_network().await?;
    cluster.wait_streaming(REPLICATION).await?;
    wait_for("the replica to catch up", REPLICATION, || async {
        Ok(replica
            .query_one_i64("SELECT count(*) FROM during_partition")
            .await
            .ok())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_container_or_network_behind() -> Result<()> {
    let cluster = Cluster::start(1, 1).await?;
    let (id, network) = (cluster.id().to_string(), cluster.network().to_string());
    let outcome = AssertUnwindSafe(async move {
        let _cluster = cluster;
        panic!("a test fails while its cluster runs");
    })
    .catch_unwind()
    .await;
    ensure!(outcome.is_err(), "the test body did not panic");

    let docker = testcontainers::core::client::docker_client_instance().await?;
    let label = format!("{TEST_LABEL}={id}");
    let options = ListContainersOptions {
        all: true,
        filters: Some([("label".to_string(), vec![label])].into_iter().collect()),
        ..Default::default()
    };
    let left = docker.list_containers(Some(options)).await?;
    assert!(left.is_empty(), "containers left behind: {left:?}");
    let network_left = docker.inspect_network(&network, None).await;
    assert!(network_left.is_err(), "network {network} left behind");
    Ok(())
}
