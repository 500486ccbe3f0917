//! A whole test topology: shards of primaries and replicas on a private Docker network.

use std::time::Duration;

use futures::future::join_all;

use crate::docker::Docker;
use crate::error::Result;
use crate::node::{Node, NodeSpec, Role};
use crate::shard::Shard;

/// What cluster to start.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of shards, each with its own primary.
    pub shards: usize,
    /// Streaming replicas of each primary.
    pub replicas_per_shard: usize,
    /// Sets `synchronous_standby_names = 'ANY 1 (*)'` on the primaries: a commit returns once
    /// one standby has flushed it.
    pub synchronous: bool,
    /// `synchronous_standby_names` of the primaries, e.g. `FIRST 1 (a, b)`; overrides
    /// `synchronous`.
    pub synchronous_standby_names: Option<String>,
    /// How the standbys are named, as the setups users have name them.
    pub naming: StandbyNaming,
    /// Extra `postgresql.conf` lines for every node, e.g. `"wal_sender_timeout = 5s"`.
    pub extra_conf: Vec<String>,
    /// How long starting the whole cluster may take (first boot, base backups, streaming).
    pub startup_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            shards: 1,
            replicas_per_shard: 0,
            synchronous: false,
            synchronous_standby_names: None,
            naming: StandbyNaming::ApplicationName,
            extra_conf: Vec::new(),
            startup_timeout: Duration::from_secs(180),
        }
    }
}

/// How a cluster's standbys are named in their primary's `pg_stat_replication`; none of
/// them sets `cluster_name` per node the way the node image once did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StandbyNaming {
    /// Each replica streams with its own `application_name` (its node name) in
    /// `primary_conninfo`, and no node has a `cluster_name` (repmgr, hand-made setups).
    ApplicationName,
    /// No `application_name`, no `cluster_name`: every standby streams as `walreceiver`
    /// (plain `initdb` and `pg_basebackup -R`).
    Walreceiver,
    /// Every node has this same `cluster_name` and no `application_name` (Debian's
    /// packaged clusters: `15/main`).
    SharedClusterName(String),
}

/// Real replicated PostgreSQL servers for one test, removed when the test ends.
///
/// Every cluster gets a Docker network of its own (`pgshard-test-<id>`), so tests can run in
/// parallel and replicas find their primary by container name. Dropping the cluster removes
/// its containers, and with the last of them the network, also when the test panics.
#[derive(Debug)]
pub struct Cluster {
    id: String,
    network: String,
    shards: Vec<Shard>,
}

impl Cluster {
    /// Starts `shards` primaries with `replicas_per_shard` streaming replicas each, and
    /// returns once every replica is streaming.
    pub async fn start(shards: usize, replicas_per_shard: usize) -> Result<Cluster> {
        Cluster::start_with(ClusterOptions {
            shards,
            replicas_per_shard,
            ..ClusterOptions::default()
        })
        .await
    }

    /// Starts the cluster `options` describes, and returns once every replica is streaming.
    ///
    /// Fails with a message saying what to do when Docker is not reachable or the node image
    /// is not built.
    pub async fn start_with(options: ClusterOptions) -> Result<Cluster> {
        let docker = Docker::connect().await?;
        let id = format!("{:08x}", rand::random::<u32>());
        let network = format!("pgshard-test-{id}");
        // Every shard's start runs to its end (no early return on the first error), so that
        // no container is left half-created behind a dropped future.
        let started = join_all(
            (0..options.shards).map(|index| start_shard(&docker, &id, &network, &options, index)),
        )
        .await;
        let shards = started.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(Cluster {
            id,
            network,
            shards,
        })
    }

    /// The random id in the cluster's network and container names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name of the cluster's Docker network.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// All shards, by index.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Shard `index`. Panics when there is no such shard.
    pub fn shard(&self, index: usize) -> &Shard {
        &self.shards[index]
    }

    /// Every node of every shard.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.shards.iter().flat_map(Shard::nodes)
    }

    /// The node called `name` (e.g. `s1-replica2`).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes().find(|node| node.name() == name)
    }

    /// Waits until every shard's replicas are streaming again.
    pub async fn wait_streaming(&self, within: Duration) -> Result<()> {
        for shard in &self.shards {
            shard.wait_streaming(within).await?;
        }
        Ok(())
    }
}

/// Starts a shard's primary, then its replicas together, then waits for them to stream.
async fn start_shard(
    docker: &Docker,
    cluster_id: &str,
    network: &str,
    options: &ClusterOptions,
    index: usize,
) -> Result<Shard> {
    let spec = |name: String, role: Role, primary_host: Option<String>| NodeSpec {
        cluster_id: cluster_id.to_string(),
        network: network.to_string(),
        name,
        shard: index,
        role,
        primary_host,
        synchronous_standby_names: options
            .synchronous_standby_names
            .clone()
            .or_else(|| options.synchronous.then(|| "ANY 1 (*)".to_string())),
        naming: options.naming.clone(),
        extra_conf: options.extra_conf.clone(),
    };
    let primary = Node::create(
        docker,
        spec(format!("s{index}-primary"), Role::Primary, None),
    )
    .await?;
    primary.wait_ready(options.startup_timeout).await?;

    let primary_host = primary.container_name();
    let spec = &spec;
    let replicas = join_all((1..=options.replicas_per_shard).map(|n| async move {
        let name = format!("s{index}-replica{n}");
        let replica = Node::create(
            docker,
            spec(name, Role::Replica, Some(primary_host.to_string())),
        )
        .await?;
        replica.wait_ready(options.startup_timeout).await?;
        Ok(replica)
    }))
    .await;
    let replicas = replicas.into_iter().collect::<Result<Vec<_>>>()?;

    let shard = Shard {
        index,
        primary,
        replicas,
    };
    shard.wait_streaming(options.startup_timeout).await?;
    Ok(shard)
}
