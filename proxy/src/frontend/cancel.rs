//! Cancel requests: proxy-issued keys mapped to the server a client is using, or to the
//! fact that its statement has not reached a server yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::net::startup::cancel_packet;

/// The server running a client's query, as a CancelRequest must name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    pub addr: String,
    pub pid: i32,
    pub key: i32,
}

/// Where a client's statement is, for a cancel request: the session updates it as it
/// takes a statement, checks out a server and gives it back.
#[derive(Clone, Default)]
pub struct CancelSlot(Arc<Mutex<CancelState>>);

/// What a cancel request finds.
#[derive(Debug, Default)]
struct CancelState {
    /// The servers the client's statement runs on (several for a statement spread over
    /// shards).
    targets: Vec<CancelTarget>,
    /// A statement is taken but not yet sent to a server (waiting for a connection):
    /// a cancel now is kept for the session, since no server would see it.
    waiting: bool,
    /// A cancel came while `waiting`.
    cancelled: bool,
}

impl CancelSlot {
    /// The client's statements now go to `targets`.
    pub fn running_on(&self, targets: Vec<CancelTarget>) {
        lock(&self.0).targets = targets;
    }

    /// No server serves the client, and nothing of it waits.
    pub fn clear(&self) {
        *lock(&self.0) = CancelState::default();
    }

    /// A statement is taken and waits for a server.
    pub fn waiting(&self) {
        let mut state = lock(&self.0);
        state.waiting = true;
        state.cancelled = false;
    }

    /// The statement is about to be sent: whether it was cancelled while waiting (then
    /// it must not run, and the client gets 57014). Later cancels go to the server.
    pub fn sending(&self) -> bool {
        let mut state = lock(&self.0);
        state.waiting = false;
        std::mem::take(&mut state.cancelled)
    }
}

/// The error PostgreSQL answers for a cancelled statement.
pub const CANCELED_MESSAGE: &str = "canceling statement due to user request";

/// Every client's BackendKeyData as the proxy issued it, so a CancelRequest on a new
/// connection reaches the server running that client's query, and nothing else.
#[derive(Clone, Default)]
pub struct CancelRegistry {
    clients: Arc<Mutex<HashMap<(i32, i32), CancelSlot>>>,
}

impl CancelRegistry {
    /// Issues fresh random keys for a client.
    pub fn register(&self) -> (i32, i32, CancelSlot) {
        let slot = CancelSlot::default();
        let mut rng = rand::thread_rng();
        let mut clients = lock(&self.clients);
        loop {
            let keys = (rng.gen_range(1..i32::MAX), rng.gen::<i32>());
            if let std::collections::hash_map::Entry::Vacant(e) = clients.entry(keys) {
                e.insert(slot.clone());
                return (keys.0, keys.1, slot);
            }
        }
    }

    pub fn unregister(&self, pid: i32, key: i32) {
        lock(&self.clients).remove(&(pid, key));
    }

    /// Forwards a cancel to the client's server, if it is running something; a
    /// statement still waiting for a server is marked, and answered 57014 instead of
    /// running.
    pub async fn cancel(&self, pid: i32, key: i32) {
        let targets = {
            let clients = lock(&self.clients);
            let Some(slot) = clients.get(&(pid, key)) else {
                tracing::debug!(pid, "cancel request with unknown keys");
                return;
            };
            let mut state = lock(&slot.0);
            if state.waiting {
                state.cancelled = true;
                tracing::info!("cancelled a statement waiting for a server connection");
                return;
            }
            state.targets.clone()
        };
        if targets.is_empty() {
            tracing::debug!(pid, "cancel request for no running query");
        }
        // Every server running the statement is told at once.
        let sent = targets.iter().map(|target| async move {
            match TcpStream::connect(&target.addr).await {
                Ok(mut stream) => {
                    let _ = stream
                        .write_all(&cancel_packet(target.pid, target.key))
                        .await;
                    let _ = stream.shutdown().await;
                    tracing::info!(server = %target.addr, "forwarded a cancel request");
                }
                Err(e) => tracing::warn!(server = %target.addr, "cannot forward cancel: {e}"),
            }
        });
        futures::future::join_all(sent).await;
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
