//! The integration-test harness of pgshard: real, replicated PostgreSQL clusters in Docker.
//!
//! A test starts a [`Cluster`] of shards (a primary and its streaming replicas each) from the
//! local image `pgshard/postgres:15` (built by `bash docker/build-images.sh`), talks to the
//! nodes over ports published on 127.0.0.1, and breaks them on purpose: stop, SIGKILL, pause,
//! cut off the Docker network, or cut only the link between the proxy and one node with its
//! [`Relay`]. Everything is removed when the cluster is dropped.
//!
//! Proxy tests put a [`TestProxy`] (pgshard itself, in-process) in front of a node, and talk
//! to it with tokio-postgres, the PostgreSQL command-line tools, or a [`wire::RawConnection`]
//! when they need to send what no driver sends.
//!
//! Differential tests run each statement on a plain server and through the proxy, and put
//! the two [`answer::Outcome`]s side by side with [`answer::difference`].
//!
//! ```no_run
//! # async fn example() -> pgshard_tests::Result<()> {
//! let cluster = pgshard_tests::Cluster::start(1, 2).await?;
//! let primary = cluster.shard(0).primary();
//! primary.execute("CREATE TABLE t (id int)").await?;
//! # Ok(()) }
//! ```

pub mod answer;
mod certificates;
mod client;
mod cluster;
mod docker;
mod error;
mod failover;
mod node;
mod proxy;
mod relay;
mod scratch;
mod shard;
mod tools;
pub mod two_phase;
mod user;
mod wait;
pub mod wire;

pub use certificates::TestCertificates;
pub use client::{connect, sqlstate};
pub use cluster::{Cluster, ClusterOptions, StandbyNaming};
pub use docker::{NODE_IMAGE, TEST_LABEL};
pub use error::{HarnessError, Result};
pub use failover::{
    admin_user, failover_bed, failover_bed_defaults, failover_bed_with, missing_writes, node_names,
    prepare_ledger, primary_name, promoted_replicas, start_failover_proxy,
    start_failover_proxy_defaults, start_failover_proxy_tuned, start_failover_proxy_with,
    wait_other_replica_follows, FailoverBed, WriteLoad, WriteOutcome, HUNG,
};
pub use node::{Node, Role};
pub use proxy::{
    sharded_proxy_toml, start_proxy_toml, start_sharded_proxy, start_sharded_proxy_with,
    ProxyOptions, ProxyUser, TestProxy,
};
pub use relay::{Relay, RelayMode, Upstream};
pub use scratch::ScratchDir;
pub use shard::Shard;
pub use tools::{run_tool, ToolOutput};
pub use user::User;
pub use wait::wait_for;
