//! Which node of a shard serves a batch.

use std::fmt;

/// A node of one shard: its primary or one of its replicas (in configuration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeIndex {
    Primary,
    Replica(usize),
}

impl fmt::Display for NodeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeIndex::Primary => write!(f, "primary"),
            NodeIndex::Replica(i) => write!(f, "replica {}", i + 1),
        }
    }
}
