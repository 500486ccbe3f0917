//! Accepting client connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::client::serve_client;
use crate::context::ProxyContext;

/// Counts a client for as long as it is connected.
struct ClientGuard(Arc<ProxyContext>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts clients until shutdown; each gets a task of its own, so a bad client never
/// holds up the others.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<ProxyContext>) {
    let mut shutdown = ctx.shutdown.clone();
    let max = ctx.config.proxy.max_client_connections;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.recv() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let count = ctx.clients.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = ClientGuard(ctx.clone());
        let ctx = ctx.clone();
        tracing::trace!(%peer, "client connected");
        tokio::spawn(async move {
            serve_client(stream, ctx, count > max).await;
            drop(guard);
        });
    }
}
