//! pgshard's configuration: the TOML schema, its defaults and its validation.
//!
//! [`load`] (or [`parse`]) returns either a [`Config`] that passed every check
//! or all the [`ConfigError`]s found, each naming file, line, column and key,
//! e.g. `pgshard.toml:12:1: proxy.pool_size: must be at least 1`. Unknown keys
//! are errors, so a typo cannot silently fall back to a default.
//!
//! `pgshard.example.toml` next to this crate documents every setting.

mod address;
mod config;
mod database;
mod de;
mod duration;
mod error;
mod failover;
mod lag;
mod load;
mod password;
mod placeholders;
mod proxy;
mod replica;
mod routing;
mod shard_mapping;
mod shard_value;
mod sharded_table;
mod sharding_function;
mod size;
mod span;
mod two_phase;
mod user;
mod uuid;
mod validate;
mod validate_sharding;

pub use address::{NodeAddress, DEFAULT_PORT};
pub use config::Config;
pub use database::{DatabaseConfig, ShardConfig};
pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors};
pub use failover::FailoverConfig;
pub use lag::{parse_lag, LagLimit};
pub use load::{load, parse};
pub use password::PasswordKind;
pub use placeholders::{
    check_rejoin_template, expand_placeholders, PlaceholderError, REJOIN_PLACEHOLDERS,
};
pub use proxy::{AuthMethod, PoolMode, ProxyConfig, ServerTlsMode, TlsMode, ADMIN_DATABASE};
pub use replica::ReplicaConfig;
pub use routing::{LoadBalance, PrimaryReads, RoutingConfig};
pub use shard_mapping::{ShardList, ShardRange};
pub use shard_value::ShardValue;
pub use sharded_table::{ShardKeyType, ShardedTable};
pub use sharding_function::ShardingFunctionKind;
pub use size::parse_size;
pub use two_phase::TwoPhaseCommit;
pub use user::UserConfig;
pub use uuid::parse_uuid;
