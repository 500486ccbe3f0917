//! Failover works per shard of a sharded database: when one shard's primary dies, its
//! replica is promoted and writes to that shard resume, writes to the other shard never
//! stop, and no acknowledged write is lost.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use pgshard_router::sharding::{hash_partition, KeyValue};
use pgshard_tests::{connect, start_failover_proxy_with, Cluster, ClusterOptions, User};

const SHARDING: &str = r#"
[[databases.sharded_tables]]
table = "items"
column = "id"
"#;

/// Ids from `from` on that `hash` sharding puts on `shard` of 2.
fn ids_on(shard: usize, from: i64, count: usize) -> Vec<i64> {
    (from..)
        .filter(|&id| hash_partition(&KeyValue::Int(id), 2) == shard)
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_whose_primary_dies_fails_over_alone() -> Result<()> {
    // Synchronous replication: a commit is acknowledged once a replica has it.
    let cluster = Cluster::start_with(ClusterOptions {
        shards: 2,
        replicas_per_shard: 1,
        synchronous: true,
        ..ClusterOptions::default()
    })
    .await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let proxy = start_failover_proxy_with(&cluster, "", SHARDING).await?;
    let client = connect(proxy.addr, &User::app()).await?;
    client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, shard int)")
        .await?;

    // One writer per shard, each inserting its shard's ids one by one.
    let mut writers = Vec::new();
    for shard in 0..2usize {
        let addr = proxy.addr;
        writers.push(tokio::spawn(async move {
            let mut client = connect(addr, &User::app()).await?;
            let mut acknowledged = Vec::new();
            let mut failed = 0;
            let mut slowest = Duration::ZERO;
            for id in ids_on(shard, 1, 400) {
                let started = Instant::now();
                let sql = format!("INSERT INTO items (id, shard) VALUES ({id}, {shard})");
                match tokio::time::timeout(Duration::from_secs(45), client.batch_execute(&sql))
                    .await
                {
                    Ok(Ok(())) => acknowledged.push(id),
                    Ok(Err(_)) => {
                        // The write in flight when the primary died has an unknown
                        // outcome (08006) and ends the session, as on one server.
                        failed += 1;
                        client = connect(addr, &User::app()).await?;
                    }
                    Err(_) => anyhow::bail!("a write to shard {shard} went unanswered for 45 s"),
                }
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, anyhow::Error>((acknowledged, failed, slowest))
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.shard(0).primary().kill().await?;

    let mut outcomes = Vec::new();
    for writer in writers {
        outcomes.push(writer.await??);
    }
    let (acked0, failed0, slowest0) = &outcomes[0];
    let (acked1, failed1, slowest1) = &outcomes[1];
    eprintln!(
        "shard 0 failed over: its writes were held at most {slowest0:?}; shard 1's slowest \
         write took {slowest1:?}; {} + {} writes acknowledged",
        acked0.len(),
        acked1.len()
    );
    // Writes to the dead shard were held until its replica took over; only the one in
    // flight when the primary died may fail (its outcome is unknown, as on one server).
    ensure!(
        *failed0 <= 1,
        "{failed0} writes to shard 0 failed during its failover (one in flight may)"
    );
    ensure!(*failed1 == 0, "{failed1} writes to shard 1 failed");
    ensure!(
        *slowest1 < Duration::from_secs(3),
        "shard 1's writes stalled for {slowest1:?} while shard 0 failed over"
    );
    ensure!(
        *slowest0 < Duration::from_secs(25),
        "shard 0's writes were held for {slowest0:?}"
    );

    // The replica of shard 0 is its primary now, and every acknowledged write is there.
    let replica = cluster.shard(0).replica(0);
    ensure!(
        !replica.is_in_recovery().await?,
        "shard 0's replica was not promoted"
    );
    let ids: Vec<String> = acked0.iter().map(i64::to_string).collect();
    let present = replica
        .query_one_i64(&format!(
            "SELECT count(*) FROM items WHERE id IN ({})",
            ids.join(", ")
        ))
        .await?;
    ensure!(
        present == acked0.len() as i64,
        "shard 0's new primary has {present} of the {} acknowledged writes",
        acked0.len()
    );
    let on_shard1 = cluster
        .shard(1)
        .primary()
        .query_one_i64("SELECT count(*) FROM items")
        .await?;
    ensure!(
        on_shard1 == acked1.len() as i64,
        "shard 1 has {on_shard1} rows, {} acknowledged",
        acked1.len()
    );
    let through_proxy: i64 = client
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    // The write in flight when the primary died may have committed unacknowledged.
    let acknowledged = (acked0.len() + acked1.len()) as i64;
    ensure!(
        (acknowledged..=acknowledged + *failed0 as i64).contains(&through_proxy),
        "the proxy counts {through_proxy} rows, {acknowledged} were acknowledged"
    );
    Ok(())
}
