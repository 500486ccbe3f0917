//! Starting and stopping a whole proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pgshard_config::Config;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::context::ProxyContext;
use crate::error::ProxyError;
use crate::frontend::listener::accept_loop;
use crate::shutdown::{shutdown_pair, ShutdownTrigger};
use crate::tasks::ProxyTasks;

/// How long sessions ended at the shutdown deadline may take to tell their clients.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// A running proxy: where it listens, and the means to stop it gracefully.
pub struct ProxyHandle {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is answered, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    ctx: Arc<ProxyContext>,
    trigger: ShutdownTrigger,
    listener: JoinHandle<()>,
    tasks: ProxyTasks,
}

/// Binds the listener and starts accepting clients. Servers are not contacted until a
/// client needs them, so servers that are down do not stop the proxy from starting.
pub async fn start(config: Config) -> Result<ProxyHandle, ProxyError> {
    let (trigger, shutdown) = shutdown_pair();
    let listen = config.proxy.listen;
    let tasks = ProxyTasks::default();
    let ctx = ProxyContext::new(config, shutdown, tasks.clone())?;
    let (listener, addr) = bind(listen).await?;
    let metrics_addr = match ctx.config.proxy.metrics_listen {
        Some(listen) => {
            let (metrics, bound) = bind(listen).await?;
            tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
            tasks.spawn(crate::metrics::serve(metrics, ctx.clone()));
            Some(bound)
        }
        None => None,
    };
    tracing::info!(%addr, "pgshard listening");
    let listener = tasks.spawn(accept_loop(listener, ctx.clone()));
    Ok(ProxyHandle {
        addr,
        metrics_addr,
        ctx,
        trigger,
        listener,
        tasks,
    })
}

/// A listener on `listen`, and the address it got (the port, when `listen` asked for 0).
async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), ProxyError> {
    let failed = |e: std::io::Error| ProxyError::Listen {
        addr: listen.to_string(),
        reason: e.to_string(),
    };
    let listener = TcpListener::bind(listen).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok((listener, addr))
}

impl ProxyHandle {
    /// Connections held right now: clients logged in and connections logging in.
    pub fn clients(&self) -> usize {
        self.ctx.admissions.clients() + self.ctx.admissions.logins()
    }

    /// Connections logging in right now.
    pub fn logins_in_progress(&self) -> usize {
        self.ctx.admissions.logins()
    }

    /// The two-phase commit fault points of database `database`, for tests.
    #[cfg(feature = "fault-injection")]
    pub fn commit_faults(&self, database: &str) -> Option<Arc<crate::two_phase::CommitFaults>> {
        let route = self.ctx.databases.get(database)?;
        Some(route.two_phase.faults.clone())
    }

    /// Resolves when an administrator asked for a shutdown (`SHUTDOWN` in the console);
    /// the caller then calls [`shutdown`](Self::shutdown).
    pub async fn stop_requested(&self) {
        self.ctx.stop_requested.notified().await
    }

    /// Every task of the proxy: how many still run, for tests of the shutdown.
    pub fn tasks(&self) -> ProxyTasks {
        self.tasks.clone()
    }

    /// Stops accepting, lets running transactions finish for up to `shutdown_timeout`,
    /// then ends the sessions still running, each told `57P01`. Returns once every task
    /// of the proxy has ended: the sessions, the shard monitors and their jobs.
    pub async fn shutdown(self) {
        let ProxyHandle {
            ctx,
            trigger,
            listener,
            tasks,
            ..
        } = self;
        trigger.trigger();
        // Once the accept loop has returned no session starts, so the sessions can be
        // waited for.
        let _ = listener.await;
        let deadline = tokio::time::Instant::now() + ctx.config.proxy.shutdown_timeout;
        if tokio::time::timeout_at(deadline, tasks.sessions_ended())
            .await
            .is_err()
        {
            tracing::warn!(
                clients = tasks.sessions(),
                "shutdown timeout reached with clients still connected; ending their sessions"
            );
            // Each is told 57P01 and let go; a session that has not ended after a moment
            // (its client does not take the notice) is dropped with the other tasks.
            trigger.terminate();
            let _ = tokio::time::timeout(TERMINATE_GRACE, tasks.sessions_ended()).await;
        } else {
            tracing::info!("all clients finished");
        }
        tasks.stop().await;
        tracing::info!("pgshard stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use crate::testing::scripted_server::{echo, ScriptedServer};
    use crate::testing::{start_proxy, TestClient};

    /// Whether the peer closes `stream` within a second (what it sends first is read
    /// away).
    async fn closes_soon(stream: &mut TcpStream) -> bool {
        let mut scratch = [0u8; 1024];
        let read_to_end = async {
            loop {
                match stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(1), read_to_end)
            .await
            .is_ok()
    }

    /// Once a shutdown returns, nothing of the proxy runs: neither the sessions (an idle
    /// one, one in a transaction, one still logging in), nor a scrape still being read,
    /// nor the shard monitors.
    #[tokio::test]
    async fn a_stopped_proxy_leaves_no_task_behind() {
        let servers = [
            ScriptedServer::start(echo()).await,
            ScriptedServer::start(echo()).await,
        ];
        let proxy = start_proxy(
            &[&servers[0], &servers[1]],
            "transaction",
            2,
            "shutdown_timeout = \"300ms\"\nmetrics_listen = \"127.0.0.1:0\"",
        )
        .await;
        let mut idle = TestClient::connect(&proxy, &[]).await;
        assert!(idle.query("SELECT 1").await.errors.is_empty());
        let mut busy = TestClient::connect(&proxy, &[]).await;
        assert_eq!(busy.query("BEGIN").await.status, 'T');
        let mut logging_in = match TcpStream::connect(proxy.addr).await {
            Ok(stream) => stream,
            Err(e) => panic!("connect to the proxy: {e}"),
        };
        let Some(metrics) = proxy.metrics_addr else {
            panic!("no metrics address")
        };
        let mut scraping = match TcpStream::connect(metrics).await {
            Ok(stream) => stream,
            Err(e) => panic!("connect to the metrics listener: {e}"),
        };
        let tasks = proxy.tasks();
        // The listeners, the monitors and the sessions; the last two appear as accepted.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tasks.sessions() >= 3, "{} sessions", tasks.sessions());

        proxy.shutdown().await;
        assert_eq!(tasks.running(), 0);
        for client in [&mut idle, &mut busy] {
            let (code, _) = crate::net::messages::error_fields(&client.read().await);
            assert_eq!(code, "57P01");
            assert!(client.closed().await, "a session still open");
        }
        assert!(closes_soon(&mut logging_in).await, "a login still open");
        assert!(closes_soon(&mut scraping).await, "a scrape still open");
    }

    /// A proxy over a node that accepts connections and never answers, so that the shard
    /// monitor's check is always under way; the check's connection, once accepted.
    async fn proxy_over_a_silent_node() -> (crate::ProxyHandle, TcpListener, TcpStream) {
        let node = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("bind the node: {e}"),
        };
        let addr = match node.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("the node's address: {e}"),
        };
        let toml = format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nlog_level = \"warn\"\n\n\
             [[users]]\nname = \"app\"\npassword = \"secret\"\n\n\
             [[databases]]\nname = \"app\"\n\
             [databases.routing]\nhealth_check_interval = \"50ms\"\n\
             [databases.failover]\ncheck_timeout = \"30s\"\n\
             [[databases.shards]]\nprimary = \"{addr}\"\n"
        );
        let config = match pgshard_config::parse(&toml, "test.toml") {
            Ok(config) => config,
            Err(e) => panic!("test config: {e}\n{toml}"),
        };
        let proxy = match crate::start(config).await {
            Ok(proxy) => proxy,
            Err(e) => panic!("start the proxy: {e}"),
        };
        let check = match tokio::time::timeout(Duration::from_secs(5), node.accept()).await {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => panic!("accept the check: {e}"),
            Err(_) => panic!("the monitor never checked the node"),
        };
        (proxy, node, check)
    }

    /// A shard monitor stops with the proxy, its check under way dropped rather than
    /// waited out.
    #[tokio::test]
    async fn a_shutdown_stops_the_shard_monitors() {
        let (proxy, node, mut check) = proxy_over_a_silent_node().await;
        let tasks = proxy.tasks();
        assert!(tasks.running() > 0);
        proxy.shutdown().await;
        assert_eq!(tasks.running(), 0);
        assert!(closes_soon(&mut check).await, "the check is still open");
        let again = tokio::time::timeout(Duration::from_millis(200), node.accept()).await;
        assert!(again.is_err(), "the node was checked again");
    }

    /// A proxy dropped without a shutdown stops its shard monitors too.
    #[tokio::test]
    async fn a_dropped_proxy_stops_its_shard_monitors() {
        let (proxy, node, mut check) = proxy_over_a_silent_node().await;
        let tasks = proxy.tasks();
        drop(proxy);
        assert!(closes_soon(&mut check).await, "the check is still open");
        let again = tokio::time::timeout(Duration::from_millis(200), node.accept()).await;
        assert!(again.is_err(), "the node was checked again");
        assert_eq!(tasks.running(), 0);
    }
}
