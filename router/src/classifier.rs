//! The entry point of classification: query string in, [`Classification`] out.

use crate::cache::ParseCache;
use crate::cache_key::cache_key;
use crate::classification::Classification;
use crate::statement::classify_statement;
use crate::statements::split_statements;
use crate::write_functions::WriteFunctions;
use std::sync::{Arc, OnceLock};

/// Classifies query strings with a configured list of writing functions and a parse
/// cache; one per database, shared by all its sessions behind an `Arc`.
pub struct Classifier {
    functions: WriteFunctions,
    cache: ParseCache,
}

impl Classifier {
    /// The `parse_cache_size` default.
    pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

    /// `extra_write_functions` are treated as writes besides the built-in ones (names
    /// compare case-insensitively, schema-qualified ones by their last part);
    /// `cache_capacity` is the number of query strings remembered, 0 for none.
    pub fn new(extra_write_functions: &[String], cache_capacity: usize) -> Self {
        Classifier {
            functions: WriteFunctions::new(extra_write_functions),
            cache: ParseCache::new(cache_capacity),
        }
    }

    /// Classifies a query string: one statement, or several for a simple query. Never
    /// fails: what cannot be parsed is a write.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        if sql.len() > crate::cache::MAX_CACHED_LEN {
            // Not cached anyway; spare the copy.
            return Arc::new(classify_with(sql, &self.functions));
        }
        let key = cache_key(sql);
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let classification = Arc::new(classify_with(sql, &self.functions));
        self.cache.insert(&key, Arc::clone(&classification));
        classification
    }

    /// How many query strings the cache holds.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl Default for Classifier {
    /// Built-in writing functions only, default cache capacity.
    fn default() -> Self {
        Classifier::new(&[], Classifier::DEFAULT_CACHE_CAPACITY)
    }
}

/// Classifies a query string with the built-in writing functions and no cache.
pub fn classify(sql: &str) -> Classification {
    static BUILT_IN: OnceLock<WriteFunctions> = OnceLock::new();
    classify_with(sql, BUILT_IN.get_or_init(WriteFunctions::default))
}

fn classify_with(sql: &str, functions: &WriteFunctions) -> Classification {
    split_statements(sql)
        .into_iter()
        .fold(Classification::empty(), |classification, statement| {
            classification.then(classify_statement(statement, functions))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classification::{Route, TxnControl};
    use crate::param::RoleHint;

    #[test]
    fn shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Classifier>();
        assert_send_sync::<Arc<Classification>>();
    }

    #[test]
    fn multi_statement_strings() {
        assert_eq!(classify("SELECT 1; SELECT 2").route, Route::Read);
        assert_eq!(
            classify("SELECT 1; INSERT INTO t VALUES (1)").route,
            Route::Write
        );
        assert_eq!(classify("SELECT ';'; SHOW x").route, Route::Read);
        let transaction = classify("BEGIN READ ONLY; SELECT 1; COMMIT");
        assert_eq!(
            (transaction.route, transaction.txn),
            (Route::Read, TxnControl::Commit)
        );
        let open = classify("COMMIT; BEGIN; UPDATE t SET a = 1");
        assert_eq!(
            (open.route, open.txn),
            (Route::Write, TxnControl::Begin { read_only: false })
        );
        let hinted = classify("/* pgshard: role=primary */ SELECT 1; SELECT 2");
        assert_eq!(
            (hinted.route, hinted.hint),
            (Route::Write, Some(RoleHint::Primary))
        );
        assert_eq!(classify("").route, Route::Read);
        assert_eq!(classify(" ; ").txn, TxnControl::None);
    }

    #[test]
    fn repeated_strings_come_from_the_cache() {
        let classifier = Classifier::new(&[], 10);
        let first = classifier.classify("SELECT 1");
        let second = classifier.classify("SELECT 1");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(classifier.cached(), 1);
        // Only the number differs: the same entry.
        let third = classifier.classify("SELECT 2");
        assert!(Arc::ptr_eq(&first, &third));
        assert_eq!(classifier.cached(), 1);
        classifier.classify("SELECT 2 FOR UPDATE");
        assert_eq!(classifier.cached(), 2);
    }

    #[test]
    fn configured_functions_are_writes() {
        let classifier = Classifier::new(&["audit_log".into()], 10);
        assert_eq!(
            classifier.classify("SELECT audit_log('x')").route,
            Route::Write
        );
        assert_eq!(classify("SELECT audit_log('x')").route, Route::Read);
    }

    #[test]
    fn without_a_cache_every_string_is_parsed() {
        let classifier = Classifier::new(&[], 0);
        let first = classifier.classify("SELECT 1");
        let second = classifier.classify("SELECT 1");
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(*first, *second);
        assert_eq!(classifier.cached(), 0);
    }
}
