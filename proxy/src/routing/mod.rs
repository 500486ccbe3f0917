//! Read/write splitting: which node of a shard serves each batch, from the statements'
//! classification, the monitor's topology, bans and the load-balancing rules.

pub mod admin_state;
pub mod balancer;
pub mod database_route;
pub mod eligibility;
pub mod node;
pub mod shard_nodes;

pub use database_route::DatabaseRoute;
pub use eligibility::ReadNeeds;
pub use node::NodeId;
pub use shard_nodes::{NodeLease, ShardNodes};
