//! One shard of a test cluster: a primary and its streaming replicas.

use std::time::Duration;

use crate::error::Result;
use crate::node::Node;
use crate::wait::wait_for;

/// A primary and the replicas that stream from it.
///
/// Shards are independent PostgreSQL clusters: nothing is shared between them but the
/// Docker network.
#[derive(Debug)]
pub struct Shard {
    pub(crate) index: usize,
    pub(crate) primary: Node,
    pub(crate) replicas: Vec<Node>,
}

impl Shard {
    /// The shard's index, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The node started as the shard's primary.
    pub fn primary(&self) -> &Node {
        &self.primary
    }

    /// The nodes started as replicas of the primary, in name order.
    pub fn replicas(&self) -> &[Node] {
        &self.replicas
    }

    /// Replica `n` (from 0). Panics when there is no such replica.
    pub fn replica(&self, n: usize) -> &Node {
        &self.replicas[n]
    }

    /// The replicas' relay addresses as TOML strings separated by commas, for a proxy
    /// configuration's `replicas = [...]`.
    pub fn replicas_toml(&self) -> String {
        let quoted: Vec<String> = self
            .replicas
            .iter()
            .map(|r| format!("\"{}\"", r.proxy_addr()))
            .collect();
        quoted.join(", ")
    }

    /// The primary, then the replicas.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.primary).chain(&self.replicas)
    }

    /// Waits until the primary's `pg_stat_replication` shows every replica streaming.
    pub async fn wait_streaming(&self, within: Duration) -> Result<()> {
        let names: Vec<&str> = self.replicas.iter().map(Node::name).collect();
        let what = format!("replicas {names:?} to stream from {}", self.primary.name());
        // By address: standbys may all stream under one name.
        wait_for(&what, within, || async {
            let streaming = self.primary.streaming_addrs().await?;
            for replica in &self.replicas {
                if !streaming.contains(&replica.network_addr().await?) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }
}
