//! An order-independent fingerprint of a set of rows: a replicated table's rows must
//! be the same on every shard, in whatever order each shard stores them.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::error::DumpError;

/// The count of rows and the wrapping sum of their hashes: equal multisets of rows
/// give equal fingerprints whatever their order; different ones almost never do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub rows: u64,
    sum: u64,
}

impl Fingerprint {
    /// Adds one row, as its COPY text line.
    pub fn add(&mut self, row: &[u8]) {
        let mut hasher = DefaultHasher::new();
        row.hash(&mut hasher);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(hasher.finish());
    }
}

/// A replicated table's rows must be the same on every shard (shard 0's are restored):
/// `per_shard` holds each shard's fingerprint of `table`, by shard.
pub fn same_everywhere(table: &str, per_shard: &[Fingerprint]) -> Result<(), DumpError> {
    let Some(first) = per_shard.first() else {
        return Ok(());
    };
    for (shard, other) in per_shard.iter().enumerate().skip(1) {
        if other != first {
            return Err(DumpError::Inexact(format!(
                "replicated table {table} differs between shards: shard 0 holds {} rows, shard \
                 {shard} holds {}{}; make every shard's copy the same and dump again",
                first.rows,
                other.rows,
                if other.rows == first.rows {
                    " with different contents"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(rows: &[&str]) -> Fingerprint {
        let mut fingerprint = Fingerprint::default();
        for row in rows {
            fingerprint.add(row.as_bytes());
        }
        fingerprint
    }

    #[test]
    fn order_does_not_matter_content_does() {
        assert_eq!(of(&["a\t1\n", "b\t2\n"]), of(&["b\t2\n", "a\t1\n"]));
        assert_ne!(of(&["a\t1\n", "b\t2\n"]), of(&["a\t1\n", "b\t3\n"]));
        assert_ne!(of(&["a\t1\n"]), of(&["a\t1\n", "a\t1\n"]));
        assert_eq!(of(&["x\n", "x\n"]).rows, 2);
    }

    #[test]
    fn a_shard_with_other_rows_is_named() {
        let same = [of(&["a\n"]), of(&["a\n"]), of(&["a\n"])];
        assert!(same_everywhere("public.t", &same).is_ok());
        let changed = [of(&["a\n"]), of(&["a\n"]), of(&["b\n"])];
        let message = same_everywhere("public.t", &changed)
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            message.contains("shard 2 holds 1 with different contents"),
            "{message}"
        );
        let fewer = [of(&["a\n", "b\n"]), of(&["a\n"])];
        let message = same_everywhere("public.t", &fewer)
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            message.contains("shard 0 holds 2 rows, shard 1 holds 1;"),
            "{message}"
        );
    }
}
