//! What the two-phase commit tests share: a proxy over a cluster's shards with `items`
//! sharded by `id`, ids placed on a chosen shard, and the end state read on each shard's
//! primary (rows, prepared transactions, decision rows).

use std::time::Duration;

use pgshard_proxy::ProxyHandle;
use pgshard_router::sharding::{hash_partition, KeyValue};

use crate::error::Result;
use crate::proxy::{sharded_proxy_toml, start_proxy_toml};
use crate::wait::wait_for;
use crate::Cluster;

/// Recovery that decides quickly: an undecided prepared transaction is rolled back after
/// 2 s, and every shard is looked at twice a second.
pub const FAST_RECOVERY: &str =
    "two_phase_commit_timeout = \"2s\"\ntwo_phase_recovery_interval = \"500ms\"\n";

/// A proxy over every shard's primary of `cluster`, sharding `items` by `id`, with
/// `settings` (TOML lines) in its `[[databases]]` entry.
pub async fn two_phase_proxy(cluster: &Cluster, settings: &str) -> Result<ProxyHandle> {
    let toml = sharded_proxy_toml(cluster, &[("items", "id", "bigint")], &[], 4).replacen(
        "[[databases]]\nname = \"app\"\n",
        &format!("[[databases]]\nname = \"app\"\n{settings}"),
        1,
    );
    start_proxy_toml(&toml, "two-phase.toml").await
}

/// An id that `hash` sharding over `shards` shards puts on `shard`, the first from `from`.
pub fn id_on(shard: usize, shards: usize, from: i64) -> i64 {
    (from..)
        .find(|&id| hash_partition(&KeyValue::Int(id), shards) == shard)
        .unwrap_or(from)
}

/// Rows of `items` tagged `tag` on each shard, read on its primary.
pub async fn rows_per_shard(cluster: &Cluster, tag: &str) -> Result<Vec<i64>> {
    let mut counts = Vec::new();
    for shard in cluster.shards() {
        let sql = format!("SELECT count(*) FROM items WHERE tag = '{tag}'");
        counts.push(shard.primary().query_one_i64(&sql).await?);
    }
    Ok(counts)
}

/// Prepared transactions on every shard.
pub async fn prepared(cluster: &Cluster) -> Result<i64> {
    let mut total = 0;
    for shard in cluster.shards() {
        total += shard
            .primary()
            .query_one_i64("SELECT count(*) FROM pg_prepared_xacts")
            .await?;
    }
    Ok(total)
}

/// Waits up to `within` until no shard has a prepared transaction nor a decision row
/// left.
pub async fn wait_settled(cluster: &Cluster, within: Duration) -> Result<()> {
    wait_for(
        "every prepared transaction finished and its decision row deleted",
        within,
        || async {
            let mut left = 0;
            for shard in cluster.shards() {
                // Decision rows are kept 15 minutes after their transaction is finished
                // everywhere; aged here to stand for that wait.
                shard
                    .primary()
                    .query_one_i64(
                        "WITH aged AS (UPDATE pgshard.commit_decisions \
                         SET decided_at = decided_at - interval '1 hour' RETURNING 1) \
                         SELECT count(*) FROM aged",
                    )
                    .await?;
                for sql in [
                    "SELECT count(*) FROM pgshard.commit_decisions",
                    "SELECT count(*) FROM pg_prepared_xacts",
                ] {
                    left += shard.primary().query_one_i64(sql).await?;
                }
            }
            Ok((left == 0).then_some(()))
        },
    )
    .await
}
