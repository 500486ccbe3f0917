//! What the admin console lists: the client sessions and server connections alive now.
//!
//! Each entry is registered when it starts and leaves when its [`Registration`] is
//! dropped, however its owner ends. The data plane touches an entry only to flip its
//! `active` flag, with no lock; the console takes the lock to read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The live entries of one kind.
pub struct Registry<T> {
    entries: Mutex<HashMap<u64, Arc<T>>>,
    next: AtomicU64,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            entries: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }
}

/// An entry's place in its registry, held by its owner; dropping it removes the entry.
pub struct Registration<T> {
    registry: Arc<Registry<T>>,
    id: u64,
    entry: Arc<T>,
}

impl<T> Registry<T> {
    pub fn register(self: &Arc<Self>, entry: T) -> Registration<T> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(entry);
        self.lock().insert(id, entry.clone());
        Registration {
            registry: self.clone(),
            id,
            entry,
        }
    }

    /// Every entry alive now, oldest first.
    pub fn entries(&self) -> Vec<Arc<T>> {
        let entries = self.lock();
        let mut ids: Vec<(&u64, &Arc<T>)> = entries.iter().collect();
        ids.sort_by_key(|(id, _)| **id);
        ids.into_iter().map(|(_, entry)| entry.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<T>>> {
        match self.entries.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl<T> Registration<T> {
    pub fn entry(&self) -> &T {
        &self.entry
    }
}

impl<T> Drop for Registration<T> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// A logged-in client session (`SHOW CLIENTS`).
pub struct ClientInfo {
    pub user: String,
    pub database: String,
    pub addr: Option<SocketAddr>,
    pub connect_time: SystemTime,
    pub tls: bool,
    pub application_name: String,
    /// Something runs for the client now: a transaction, a statement, a held batch.
    pub active: Activity,
    /// Ends the session (`KILL`).
    pub kill: Arc<crate::shutdown::KillSwitch>,
}

/// A server connection a pool opened (`SHOW SERVERS`).
pub struct ServerInfo {
    /// The `[[users]]` entry whose pool holds it.
    pub user: String,
    pub database: String,
    pub addr: String,
    /// The server process serving it.
    pub pid: i32,
    pub connect_time: SystemTime,
    pub tls: bool,
    /// Checked out by a session now.
    pub active: Activity,
    /// Its pool's `RECONNECT` generation when it was opened, and the pool's now.
    pub generation: u64,
    pub pool_generation: Arc<AtomicU64>,
}

/// Whether an entry is busy now (`active` or `idle` in the console's listings); set by
/// its owner without a lock.
#[derive(Default)]
pub struct Activity(AtomicBool);

impl Activity {
    pub fn set(&self, active: bool) {
        self.0.store(active, Ordering::Relaxed);
    }

    pub fn is_active(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl ServerInfo {
    /// Opened before its pool's last `RECONNECT`: closed once released.
    pub fn is_outdated(&self) -> bool {
        self.generation != self.pool_generation.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_as_long_as_its_registration() {
        let registry: Arc<Registry<String>> = Arc::default();
        let first = registry.register("a".to_string());
        let second = registry.register("b".to_string());
        assert_eq!(registry.entries().len(), 2);
        assert_eq!(**registry.entries().first().unwrap(), "a");
        drop(first);
        assert_eq!(registry.entries().len(), 1);
        assert_eq!(second.entry(), "b");
        drop(second);
        assert!(registry.entries().is_empty());
    }
}
