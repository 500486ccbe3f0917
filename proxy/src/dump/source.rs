//! What `pgshard dump` reads: one sharded database of the configuration, each shard's
//! configured primary, and the server credentials and TLS settings pgshard itself uses
//! towards them.

use std::path::PathBuf;

use pgshard_config::{Config, DatabaseConfig, NodeAddress, ServerTlsMode};

use super::error::DumpError;
use crate::backend::ServerTarget;

/// The database to dump and how to log in to its shards.
#[derive(Debug, Clone)]
pub struct DumpSource {
    pub database: DatabaseConfig,
    /// The server user (the chosen `[[users]]` entry's `server_user`).
    pub user: String,
    pub password: Option<String>,
    pub tls_mode: ServerTlsMode,
    pub tls_ca: Option<PathBuf>,
}

impl DumpSource {
    /// The `[[databases]]` entry called `database` (or the only one), logged in to as
    /// the `[[users]]` entry called `user` (or the first one).
    pub fn new(
        config: &Config,
        database: Option<&str>,
        user: Option<&str>,
    ) -> Result<DumpSource, DumpError> {
        let names = || {
            config
                .databases
                .iter()
                .map(|d| format!("\"{}\"", d.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let database = match database {
            Some(name) => config
                .databases
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| {
                    DumpError::Config(format!(
                        "no database \"{name}\" in the configuration (it has {})",
                        names()
                    ))
                })?,
            None => match config.databases.as_slice() {
                [only] => only,
                _ => {
                    return Err(DumpError::Config(format!(
                        "name the database to dump with --database (one of {})",
                        names()
                    )))
                }
            },
        };
        if database.shards.len() < 2 {
            return Err(DumpError::Config(format!(
                "database \"{}\" has one shard: back it up with pg_dump, directly or through \
                 pgshard",
                database.name
            )));
        }
        let entry = match user {
            Some(name) => config
                .users
                .iter()
                .find(|u| u.name == name)
                .ok_or_else(|| {
                    DumpError::Config(format!(
                        "no [[users]] entry \"{name}\" in the configuration"
                    ))
                })?,
            None => config.users.first().ok_or_else(|| {
                DumpError::Config("the configuration has no [[users]] entry".to_string())
            })?,
        };
        Ok(DumpSource {
            database: database.clone(),
            user: entry.server_user().to_string(),
            password: entry.server_password().map(str::to_string),
            tls_mode: config.proxy.server_tls_mode,
            tls_ca: config.proxy.server_tls_ca.clone(),
        })
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.database.shards.len()
    }

    /// Shard `shard`'s configured primary.
    pub fn primary(&self, shard: usize) -> Option<&NodeAddress> {
        self.database.shards.get(shard).map(|s| &s.primary)
    }

    /// How pgshard's own connections reach shard `shard`'s primary.
    pub fn server_target(&self, shard: usize) -> Option<ServerTarget> {
        Some(ServerTarget {
            addr: self.primary(shard)?.to_string(),
            pool_user: self.user.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            database: self.database.server_database().to_string(),
        })
    }

    /// libpq's environment for pg_dump to reach shard `shard`'s primary as pgshard does.
    pub fn libpq_env(&self, shard: usize) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(primary) = self.primary(shard) {
            env.push(("PGHOST", primary.host.clone()));
            env.push(("PGPORT", primary.port.to_string()));
        }
        env.push(("PGUSER", self.user.clone()));
        env.push(("PGDATABASE", self.database.server_database().to_string()));
        env.push(("PGAPPNAME", "pgshard dump".to_string()));
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD", password.clone()));
        }
        let sslmode = match self.tls_mode {
            ServerTlsMode::Disable => "disable",
            ServerTlsMode::Prefer => "prefer",
            ServerTlsMode::Require => "require",
            ServerTlsMode::VerifyFull => "verify-full",
        };
        env.push(("PGSSLMODE", sslmode.to_string()));
        if let Some(ca) = &self.tls_ca {
            env.push(("PGSSLROOTCERT", ca.display().to_string()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(databases: &str) -> Config {
        let text = format!(
            "[proxy]\nserver_tls_mode = \"require\"\nauth_method = \"md5\"\n\
             [[users]]\nname = \"app\"\npassword = \"secret\"\nserver_user = \"app_server\"\n\
             [[users]]\nname = \"ops\"\npassword = \"md5d41d8cd98f00b204e9800998ecf8427e\"\n\
             server_password = \"ops-pw\"\n{databases}"
        );
        pgshard_config::parse(&text, "pgshard.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    const TWO_SHARDS: &str = "[[databases]]\nname = \"app\"\nserver_database = \"app_db\"\n\
        [[databases.shards]]\nprimary = \"db0:5433\"\n\
        [[databases.shards]]\nprimary = \"[::1]:5434\"\n";

    #[test]
    fn the_only_database_as_the_first_user() {
        let source = DumpSource::new(&config(TWO_SHARDS), None, None).unwrap();
        assert_eq!(source.shards(), 2);
        let env = source.libpq_env(1);
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PGHOST"), Some("::1"));
        assert_eq!(get("PGPORT"), Some("5434"));
        assert_eq!(get("PGUSER"), Some("app_server"));
        assert_eq!(get("PGPASSWORD"), Some("secret"));
        assert_eq!(get("PGDATABASE"), Some("app_db"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
        let target = source.server_target(0).unwrap();
        assert_eq!(
            (target.addr.as_str(), target.database.as_str()),
            ("db0:5433", "app_db")
        );
        let ops = DumpSource::new(&config(TWO_SHARDS), Some("app"), Some("ops")).unwrap();
        assert_eq!(ops.password.as_deref(), Some("ops-pw"));
    }

    #[test]
    fn what_cannot_be_dumped_is_named() {
        let two = format!("{TWO_SHARDS}[[databases]]\nname = \"other\"\n[[databases.shards]]\nprimary = \"db9\"\n");
        let error = |database: Option<&str>, user: Option<&str>| {
            DumpSource::new(&config(&two), database, user)
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
        };
        assert!(error(None, None).contains("--database"));
        assert!(error(Some("nope"), None).contains("\"app\", \"other\""));
        assert!(error(Some("other"), None).contains("one shard"));
        assert!(error(Some("app"), Some("nobody")).contains("nobody"));
        assert_eq!(error(Some("app"), None), "");
    }
}
