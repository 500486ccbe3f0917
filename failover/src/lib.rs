//! pgshard's control plane: it checks every node's reachability, role and WAL positions
//! over control connections and publishes per-shard topologies that the data plane reads
//! when it routes.

pub mod error;
pub mod lsn;
pub mod monitor;
pub mod node_status;
pub mod probe;
pub mod topology;

pub use error::ProbeError;
pub use lsn::Lsn;
pub use monitor::{MonitorSettings, ShardMonitor};
pub use node_status::{NodeRole, NodeStatus};
pub use probe::{NodeProbe, ProbeCredentials, ProbeReading};
pub use topology::{ShardTopology, SharedTopology};
