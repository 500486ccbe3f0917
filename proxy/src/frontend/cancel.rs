//! Cancel requests: proxy-issued keys mapped to the server a client is using.

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

/// The client's current server, updated as connections are checked out and returned.
pub type CancelSlot = Arc<Mutex<Option<CancelTarget>>>;

/// Every client's BackendKeyData as the proxy issued it, so a CancelRequest on a new
/// connection reaches the server running that client's query, and nothing else.
#[derive(Clone, Default)]
pub struct CancelRegistry {
    clients: Arc<Mutex<HashMap<(i32, i32), CancelSlot>>>,
}

impl CancelRegistry {
    /// Issues fresh random keys for a client.
    pub fn register(&self) -> (i32, i32, CancelSlot) {
        let slot: CancelSlot = Arc::new(Mutex::new(None));
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

    /// Forwards a cancel to the client's server, if it is running something.
    pub async fn cancel(&self, pid: i32, key: i32) {
        let target = {
            let clients = lock(&self.clients);
            clients.get(&(pid, key)).and_then(|slot| lock(slot).clone())
        };
        let Some(target) = target else {
            tracing::debug!(pid, "cancel request for no running query");
            return;
        };
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
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
