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
}

/// Binds the listener and starts accepting clients. Servers are not contacted until a
/// client needs them, so servers that are down do not stop the proxy from starting.
pub async fn start(config: Config) -> Result<ProxyHandle, ProxyError> {
    let (trigger, shutdown) = shutdown_pair();
    let listen = config.proxy.listen;
    let ctx = ProxyContext::new(config, shutdown)?;
    let (listener, addr) = bind(listen).await?;
    let metrics_addr = match ctx.config.proxy.metrics_listen {
        Some(listen) => {
            let (metrics, bound) = bind(listen).await?;
            tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
            tokio::spawn(crate::metrics::serve(metrics, ctx.clone()));
            Some(bound)
        }
        None => None,
    };
    tracing::info!(%addr, "pgshard listening");
    let listener = tokio::spawn(accept_loop(listener, ctx.clone()));
    Ok(ProxyHandle {
        addr,
        metrics_addr,
        ctx,
        trigger,
        listener,
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

    /// Stops accepting, lets running transactions finish for up to `shutdown_timeout`,
    /// then ends the sessions still running, each told `57P01`, and returns.
    pub async fn shutdown(self) {
        let ProxyHandle {
            ctx,
            trigger,
            listener,
            ..
        } = self;
        trigger.trigger();
        let _ = listener.await;
        let clients = || ctx.admissions.clients() + ctx.admissions.logins();
        let deadline = tokio::time::Instant::now() + ctx.config.proxy.shutdown_timeout;
        while clients() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = clients();
        if left > 0 {
            tracing::warn!(
                clients = left,
                "shutdown timeout reached with clients still connected; ending their sessions"
            );
            // Each is told 57P01 and let go; a client that does not take the notice is
            // given up on after a moment.
            trigger.terminate();
            let grace = tokio::time::Instant::now() + TERMINATE_GRACE;
            while clients() > 0 && tokio::time::Instant::now() < grace {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            tracing::info!("all clients finished; pgshard stopped");
        }
    }
}
