//! An order-independent fingerprint of a set of rows: a replicated table's rows must
//! be the same on every shard, in whatever order each shard stores them.

use std::hash::{DefaultHasher, Hash, Hasher};

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
}
