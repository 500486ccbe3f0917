//! The parse cache: classifications of recently seen query strings.
//!
//! Applications send the same few statement texts over and over (with `$1`
//! parameters or from an ORM), so remembering a text's classification spares most
//! parses. The `lru` crate's cache is a hash map with an intrusive list: O(1) lookups
//! and evictions with no per-hit allocation.

use crate::classification::Classification;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

/// Longer texts are classified but not kept, so the cache holds at most
/// capacity × 16 kB of text; long texts are mostly generated bulk statements that
/// rarely repeat.
pub const MAX_CACHED_LEN: usize = 16 * 1024;

/// A bounded, thread-safe LRU map from query text to its classification.
///
/// Values are `Arc`s so that a hit holds the lock only for a lookup and a
/// reference-count increment; parsing happens outside the lock.
pub(crate) struct ParseCache {
    /// `None` when the capacity is 0: caching is off.
    entries: Option<Mutex<LruCache<String, Arc<Classification>>>>,
}

impl ParseCache {
    pub(crate) fn new(capacity: usize) -> Self {
        ParseCache {
            entries: NonZeroUsize::new(capacity)
                .map(|capacity| Mutex::new(LruCache::new(capacity))),
        }
    }

    pub(crate) fn get(&self, sql: &str) -> Option<Arc<Classification>> {
        let entries = self.entries.as_ref()?;
        lock(entries).get(sql).cloned()
    }

    /// Remembers a classification unless the text is too long to keep.
    pub(crate) fn insert(&self, sql: &str, classification: Arc<Classification>) {
        if let Some(entries) = &self.entries {
            if sql.len() <= MAX_CACHED_LEN {
                let key = sql.to_string();
                lock(entries).put(key, classification);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |entries| lock(entries).len())
    }
}

/// Nothing panics while holding the lock, but if something did the map would still
/// be consistent: keep using it rather than failing every later statement.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Arc<Classification> {
        Arc::new(Classification::empty())
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = ParseCache::new(2);
        cache.insert("a", entry());
        cache.insert("b", entry());
        assert!(cache.get("a").is_some());
        cache.insert("c", entry());
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn long_texts_are_not_kept() {
        let cache = ParseCache::new(2);
        let long = "x".repeat(MAX_CACHED_LEN + 1);
        cache.insert(&long, entry());
        assert!(cache.get(&long).is_none());
        let limit = "x".repeat(MAX_CACHED_LEN);
        cache.insert(&limit, entry());
        assert!(cache.get(&limit).is_some());
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let cache = ParseCache::new(0);
        cache.insert("a", entry());
        assert!(cache.get("a").is_none());
        assert_eq!(cache.len(), 0);
    }
}
