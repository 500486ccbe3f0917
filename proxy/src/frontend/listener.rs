//! Accepting client connections.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::client::serve_client;
use crate::context::ProxyContext;
use crate::net::messages::error_response;
use crate::net::Severity;

/// Accepts clients until shutdown; each gets a session task of its own (owned by
/// `ctx.tasks`), so a bad client never holds up the others. A connection that finds every
/// login place taken is refused at once (see [`Admissions`](super::admission::Admissions)),
/// so connections beyond the limits are never held.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<ProxyContext>) {
    let mut shutdown = ctx.shutdown.clone();
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
        let Some(admission) = ctx.admissions.begin_login() else {
            tracing::debug!(%peer, "refused: every login place is taken");
            ctx.admissions.note_refused();
            refuse_at_once(&stream);
            continue;
        };
        tracing::trace!(%peer, "client connected");
        ctx.tasks
            .spawn_session(serve_client(stream, ctx.clone(), admission));
    }
}

/// Tells a connection there is no room, with PostgreSQL's 53300, and closes it without
/// waiting on it: the error goes out if the socket takes it at once (a new socket's send
/// buffer is empty), and what the client already sent (its startup packet) is read away
/// first, so that the close is an orderly one that keeps the error readable.
fn refuse_at_once(stream: &TcpStream) {
    let error = error_response(Severity::Fatal, "53300", "sorry, too many clients already");
    let _ = stream.try_write(error.as_bytes());
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}
