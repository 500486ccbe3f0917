//! pgshard's control plane: it checks every node's reachability, role, timeline and WAL
//! positions over control connections, publishes per-shard topologies that the data
//! plane reads when it routes, promotes a replica when a primary dies, and switches the
//! primary over to a chosen replica when an administrator asks.

pub mod candidate;
pub mod command;
pub mod control;
pub mod controller;
pub mod detector;
pub mod error;
pub mod fencing;
mod forced;
pub mod lsn;
pub mod monitor;
pub mod node_status;
pub mod node_tls;
mod postgres_tls;
pub mod probe;
pub mod promotion;
pub mod quiesce;
pub mod rejoin;
mod switchover;
pub mod sync_standbys;
pub mod tasks;
pub mod topology;

pub use candidate::PromotionRules;
pub use command::{CommandError, CommandReport, ShardControl};
pub use control::ProbeCredentials;
pub use controller::{FailoverController, FailoverSettings, Repointed};
pub use error::ProbeError;
pub use lsn::Lsn;
pub use monitor::{MonitorSettings, ShardMonitor};
pub use node_status::{NodeRole, NodeStatus};
pub use node_tls::NodeTls;
pub use probe::{NodeProbe, ProbeReading};
pub use promotion::ReplicationLogin;
pub use rejoin::RejoinCommand;
pub use tasks::Tasks;
pub use topology::{ShardPhase, ShardTopology, SharedTopology, TopologyPublisher};
