//! The planner's cache: templates of recently planned statement texts.
//!
//! Parsing and analyzing costs tens of microseconds, while applications repeat the
//! same few texts (with `$n` parameters); a hit costs a hash lookup and a reference
//! count increment under a short lock.

use super::template::Template;
use crate::MAX_CACHED_LEN;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

/// A bounded, thread-safe LRU map from statement text to its template.
pub(crate) struct TemplateCache {
    /// `None` when the capacity is 0: caching is off.
    entries: Option<Mutex<LruCache<String, Arc<Template>>>>,
}

impl TemplateCache {
    pub fn new(capacity: usize) -> Self {
        TemplateCache {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    pub fn get(&self, text: &str) -> Option<Arc<Template>> {
        let entries = self.entries.as_ref()?;
        entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(text)
            .cloned()
    }

    /// Remembers a template unless the text is too long to keep.
    pub fn insert(&self, text: &str, template: Arc<Template>) {
        if let Some(entries) = &self.entries {
            if text.len() <= MAX_CACHED_LEN {
                entries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .put(text.to_string(), template);
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |entries| {
            entries.lock().unwrap_or_else(PoisonError::into_inner).len()
        })
    }
}
