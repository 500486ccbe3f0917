//! Why an admin console command failed, with the SQLSTATE the client is given.

use pgshard_failover::CommandError;

/// The commands the admin console knows, for error messages.
pub const COMMANDS: &str = "SHOW NODES; SHOW DATABASES; SHOW POOLS; SHOW CLIENTS; SHOW SERVERS; \
     SHOW LISTS; SHOW STATS; SHOW VERSION; PAUSE [<database>]; RESUME [<database>]; DISABLE <database>; \
     ENABLE <database>; RECONNECT [<database>]; WAIT_CLOSE [<database>]; KILL <database>; \
     SHUTDOWN; SWITCHOVER <database> <shard> \
     <replica address>; PROMOTE <database> <shard> <replica address> FORCE";

/// An admin command that did nothing (or stopped; the message says what happened).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unknown command \"{0}\"; the admin console knows: {COMMANDS}")]
    Unknown(String),
    #[error("{0}; usage: {COMMANDS}")]
    Syntax(String),
    #[error("the admin console speaks the simple query protocol only")]
    ExtendedProtocol,
    #[error("database \"{0}\" does not exist")]
    NoDatabase(String),
    #[error("database \"{database}\" has no shard {shard}; it has {count}")]
    NoShard {
        database: String,
        shard: usize,
        count: usize,
    },
    /// A console command that could not do what was asked (SQLSTATE 55000).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl AdminError {
    /// The SQLSTATE of the ErrorResponse.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AdminError::Unknown(_) | AdminError::Syntax(_) => "42601",
            AdminError::ExtendedProtocol => "0A000",
            AdminError::NoDatabase(_) => "3D000",
            AdminError::NoShard { .. } => "22023",
            AdminError::Refused(_) => "55000",
            AdminError::Command(CommandError::NoSuchNode { .. }) => "42704",
            AdminError::Command(CommandError::Refused(_)) => "55000",
            AdminError::Command(_) => "58000",
        }
    }
}
