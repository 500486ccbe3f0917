//! One PostgreSQL server of a test cluster, in its own container.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio_postgres::types::FromSqlOwned;

use crate::client::connect;
use crate::cluster::StandbyNaming;
use crate::docker::{Docker, NODE_IMAGE, POSTGRES_PORT, TEST_LABEL};
use crate::error::{HarnessError, Result};
use crate::relay::{Relay, Upstream};
use crate::user::User;
use crate::wait::wait_for;

/// How long [`Node::is_up`] waits for an answer before calling the node down.
const IS_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a node may take to come back after [`Node::start`] or [`Node::restart`].
const RESTART_TIMEOUT: Duration = Duration::from_secs(120);

/// Lines of container log attached to a "not ready" error.
const LOG_LINES_ON_ERROR: usize = 40;

/// The role a node was started in. A failover may change what a node really is; ask the node
/// itself ([`Node::is_in_recovery`]) for that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    fn as_env(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// How a wait for a node to accept connections ended.
enum Readiness {
    Ready,
    Exited,
}

/// What the cluster asks for when it starts a node.
pub(crate) struct NodeSpec {
    pub cluster_id: String,
    pub network: String,
    pub name: String,
    pub shard: usize,
    pub role: Role,
    /// The primary's host name on the Docker network (replicas only).
    pub primary_host: Option<String>,
    /// The primary's `synchronous_standby_names`, when commits wait for standbys.
    pub synchronous_standby_names: Option<String>,
    pub naming: StandbyNaming,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
}

/// A PostgreSQL server in a container, with the controls tests use to break it.
///
/// Tests reach it two ways: directly at [`Node::addr`] (`127.0.0.1:<published port>`) for
/// set-up and checks, and through its [`Relay`] at [`Node::proxy_addr`], the address the
/// proxy under test is given, so the link between proxy and node can be cut alone.
/// Dropping the node removes its container.
pub struct Node {
    name: String,
    shard: usize,
    role: Role,
    container_name: String,
    network: String,
    docker: Docker,
    addr: Mutex<SocketAddr>,
    relay: Relay,
    // Last, so that the relay is gone before the container is removed.
    container: ContainerAsync<GenericImage>,
}

impl Node {
    /// Creates and starts the container; does not wait for PostgreSQL to accept connections.
    pub(crate) async fn create(docker: &Docker, spec: NodeSpec) -> Result<Node> {
        let container_name = format!("pgshard-test-{}-{}", spec.cluster_id, spec.name);
        let mut request = GenericImage::new(NODE_IMAGE.0, NODE_IMAGE.1)
            .with_exposed_port(POSTGRES_PORT.tcp())
            .with_container_name(&container_name)
            .with_network(&spec.network)
            .with_label(TEST_LABEL, &spec.cluster_id)
            .with_env_var("NODE_NAME", &spec.name)
            .with_env_var("PG_ROLE", spec.role.as_env())
            .with_host_config_modifier(publish_on_loopback);
        if let Some(primary) = &spec.primary_host {
            request = request.with_env_var("PRIMARY_HOST", primary);
        }
        if let (Some(names), Role::Primary) = (&spec.synchronous_standby_names, spec.role) {
            request = request.with_env_var("SYNCHRONOUS_STANDBY_NAMES", names);
        }
        // Every node, primaries too: a primary that rejoins streams as a standby.
        match &spec.naming {
            StandbyNaming::ApplicationName => {
                request = request.with_env_var("STANDBY_APPLICATION_NAME", &spec.name);
            }
            StandbyNaming::Walreceiver => {}
            StandbyNaming::SharedClusterName(name) => {
                request = request.with_env_var("CLUSTER_NAME", name);
            }
        }
        if !spec.extra_conf.is_empty() {
            request = request.with_env_var("PG_EXTRA_CONF", spec.extra_conf.join(";"));
        }
        let container = request
            .start()
            .await
            .map_err(|source| HarnessError::Container {
                container: container_name.clone(),
                source,
            })?;
        let port = docker.published_port(&container_name).await?;
        let relay = Relay::start(upstream(docker.clone(), container_name.clone())).await?;
        Ok(Node {
            name: spec.name,
            shard: spec.shard,
            role: spec.role,
            container_name,
            network: spec.network,
            docker: docker.clone(),
            addr: Mutex::new(loopback(port)),
            relay,
            container,
        })
    }

    /// The node's name: `s<shard>-primary` or `s<shard>-replica<n>`. With
    /// [`StandbyNaming::ApplicationName`] (the default) it is also the node's
    /// `application_name` in its primary's `pg_stat_replication`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index of the shard the node belongs to.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The role the node was started in.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The container's name, which is also its host name on the cluster's Docker network.
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// Where tests reach the node directly: `127.0.0.1:<published port>`. The port may change
    /// when the container restarts; the node re-reads it whenever it (re)starts.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the proxy under test reaches the node: the relay's address, stable for the
    /// node's whole life, whatever happens to the container.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.relay.addr()
    }

    /// The fault switch between the proxy and this node.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Stops the container (PostgreSQL's fast shutdown).
    pub async fn stop(&self) -> Result<()> {
        self.container
            .stop()
            .await
            .map_err(|source| self.container_error(source))
    }

    /// Kills the container with SIGKILL: the server dies without shutting down.
    pub async fn kill(&self) -> Result<()> {
        self.docker.kill(&self.container_name).await
    }

    /// Freezes every process of the node: connections stay open but nothing answers.
    pub async fn pause(&self) -> Result<()> {
        self.container
            .pause()
            .await
            .map_err(|source| self.container_error(source))
    }

    /// Lets a paused node run again.
    pub async fn unpause(&self) -> Result<()> {
        self.container
            .unpause()
            .await
            .map_err(|source| self.container_error(source))
    }

    /// Starts a stopped or killed node and waits until it accepts SQL again.
    pub async fn start(&self) -> Result<()> {
        self.container
            .start()
            .await
            .map_err(|source| self.container_error(source))?;
        self.wait_ready(RESTART_TIMEOUT).await
    }

    /// Restarts the node (fast shutdown) and waits until it accepts SQL again.
    pub async fn restart(&self) -> Result<()> {
        self.docker
            .restart(&self.container_name, Duration::from_secs(10))
            .await?;
        self.wait_ready(RESTART_TIMEOUT).await
    }

    /// Cuts the node off the cluster's Docker network: its peers cannot reach it nor it them,
    /// and its published port stops answering too.
    pub async fn disconnect_network(&self) -> Result<()> {
        self.docker
            .disconnect(&self.network, &self.container_name)
            .await
    }

    /// Puts the node back on the cluster's Docker network and re-reads its published port.
    pub async fn connect_network(&self) -> Result<()> {
        self.docker
            .connect_to(&self.network, &self.container_name)
            .await?;
        self.refresh_addr().await.map(|_| ())
    }

    /// Whether the node's container runs and the server answers `SELECT 1` within 2 seconds.
    pub async fn is_up(&self) -> bool {
        if !matches!(self.docker.is_running(&self.container_name).await, Ok(true)) {
            return false;
        }
        if self.refresh_addr().await.is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(IS_UP_TIMEOUT, self.query_one::<i32>("SELECT 1")).await,
            Ok(Ok(1))
        )
    }

    /// Waits until the server accepts SQL. Fails at once if the container exits, and on
    /// timeout; either error carries the container's last log lines.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let what = format!("node {} to accept connections", self.name);
        let ready = wait_for(&what, within, || async {
            if !self.docker.is_running(&self.container_name).await? {
                return Ok(Some(Readiness::Exited));
            }
            self.refresh_addr().await?;
            self.query_one::<i32>("SELECT 1").await?;
            Ok(Some(Readiness::Ready))
        })
        .await;
        let reason = match ready {
            Ok(Readiness::Ready) => return Ok(()),
            Ok(Readiness::Exited) => "its container exited".to_string(),
            Err(error) => error.to_string(),
        };
        Err(HarnessError::NotReady {
            node: self.name.clone(),
            reason,
            logs: self.log_tail().await,
        })
    }

    /// Opens a SQL connection straight to the node (not through the relay).
    pub async fn client(&self, user: &User) -> Result<tokio_postgres::Client> {
        connect(self.addr(), user)
            .await
            .map_err(|source| self.sql_error(source))
    }

    /// Runs statements (no results) as `app` on the database `app`.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        let client = self.client(&User::app()).await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|source| self.sql_error(source))
    }

    /// Runs a query that returns one row of one column, as `app` on the database `app`.
    pub async fn query_one<T: FromSqlOwned>(&self, sql: &str) -> Result<T> {
        let client = self.client(&User::app()).await?;
        let row = client
            .query_one(sql, &[])
            .await
            .map_err(|source| self.sql_error(source))?;
        row.try_get(0).map_err(|source| self.sql_error(source))
    }

    /// [`Node::query_one`] for a `bigint` result, the usual `count(*)`.
    pub async fn query_one_i64(&self, sql: &str) -> Result<i64> {
        self.query_one(sql).await
    }

    /// Whether the server is a standby (`pg_is_in_recovery()`).
    pub async fn is_in_recovery(&self) -> Result<bool> {
        self.query_one("SELECT pg_is_in_recovery()").await
    }

    /// The `application_name`s of the standbys streaming from this node right now.
    pub async fn streaming_replicas(&self) -> Result<Vec<String>> {
        let client = self.client(&User::app()).await?;
        let rows = client
            .query(
                "SELECT application_name FROM pg_stat_replication \
                 WHERE state = 'streaming' ORDER BY application_name",
                &[],
            )
            .await
            .map_err(|source| self.sql_error(source))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(|source| self.sql_error(source)))
            .collect()
    }

    /// The addresses of the standbys streaming from this node right now (whatever names
    /// they stream with).
    pub async fn streaming_addrs(&self) -> Result<Vec<String>> {
        let client = self.client(&User::app()).await?;
        let rows = client
            .query(
                "SELECT host(client_addr) FROM pg_stat_replication \
                 WHERE state = 'streaming' AND client_addr IS NOT NULL",
                &[],
            )
            .await
            .map_err(|source| self.sql_error(source))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(|source| self.sql_error(source)))
            .collect()
    }

    /// The node's address on the cluster's network, as its peers (and
    /// `pg_stat_replication.client_addr`) see it.
    pub async fn network_addr(&self) -> Result<String> {
        self.query_one("SELECT host(inet_server_addr())").await
    }

    /// The last lines of the container's log.
    pub async fn log_tail(&self) -> String {
        self.docker
            .log_tail(&self.container_name, LOG_LINES_ON_ERROR)
            .await
    }

    /// Asks Docker for the port currently published for 5432 and remembers it.
    pub async fn refresh_addr(&self) -> Result<SocketAddr> {
        let addr = loopback(self.docker.published_port(&self.container_name).await?);
        *self.addr.lock().unwrap_or_else(PoisonError::into_inner) = addr;
        Ok(addr)
    }

    fn container_error(&self, source: testcontainers::TestcontainersError) -> HarnessError {
        HarnessError::Container {
            container: self.container_name.clone(),
            source,
        }
    }

    fn sql_error(&self, source: tokio_postgres::Error) -> HarnessError {
        HarnessError::Sql {
            node: self.name.clone(),
            source,
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("container", &self.container_name)
            .field("addr", &self.addr())
            .field("proxy_addr", &self.proxy_addr())
            .finish()
    }
}

/// Publishes PostgreSQL's port on 127.0.0.1 only, on a port Docker picks. (testcontainers
/// would publish on every interface.)
fn publish_on_loopback(host_config: &mut HostConfig) {
    let binding = PortBinding {
        host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
        host_port: Some(String::new()),
    };
    host_config.publish_all_ports = Some(false);
    host_config.port_bindings = Some(
        [(format!("{POSTGRES_PORT}/tcp"), Some(vec![binding]))]
            .into_iter()
            .collect(),
    );
}

/// The relay's way to find the node: its published port, asked anew for every connection.
fn upstream(docker: Docker, container_name: String) -> Upstream {
    Arc::new(move || {
        let docker = docker.clone();
        let container_name = container_name.clone();
        Box::pin(async move {
            let port = docker
                .published_port(&container_name)
                .await
                .map_err(io::Error::other)?;
            Ok(loopback(port))
        })
    })
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
