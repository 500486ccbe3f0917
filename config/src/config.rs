//! The whole configuration file.

use crate::database::DatabaseConfig;
use crate::proxy::ProxyConfig;
use crate::user::UserConfig;
use serde::Deserialize;

/// A validated configuration: what [`crate::load`] returns.
///
/// `users` and `databases` each hold at least one entry, with unique names;
/// every pair of them gets its own pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub proxy: ProxyConfig,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub databases: Vec<DatabaseConfig>,
}
