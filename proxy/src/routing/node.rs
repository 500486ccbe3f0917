//! Which node of a shard serves a batch.

use std::fmt;

/// A node of one shard, by its position in the configuration (the configured primary
/// first, then the replicas). Roles are not part of it: after a failover a former replica
/// is the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub usize);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}
