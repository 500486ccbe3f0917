//! Why `pgshard dump` stopped.

use thiserror::Error;

/// A dump that could not be made, or could not be made exact; the message says what to
/// do.
#[derive(Debug, Error)]
pub enum DumpError {
    /// The configuration does not say what to dump, or with which credentials.
    #[error("{0}")]
    Config(String),
    /// A shard's server could not be reached or refused a query.
    #[error("shard {shard} ({addr}): {reason}")]
    Server {
        shard: usize,
        addr: String,
        reason: String,
    },
    /// pg_dump could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn { program: String, reason: String },
    /// pg_dump ended with an error.
    #[error("pg_dump of shard {shard} ({addr}) failed ({status}):\n{stderr}")]
    PgDump {
        shard: usize,
        addr: String,
        status: String,
        stderr: String,
    },
    /// pg_dump's output was not what the merge expects (a pg_dump much newer or older
    /// than this pgshard, or options that change its output).
    #[error("pg_dump's output of shard {shard}, line {line}: {reason}")]
    Output {
        shard: usize,
        line: u64,
        reason: String,
    },
    /// The database holds something a restore through pgshard could not reproduce
    /// exactly.
    #[error("{0}")]
    Inexact(String),
    /// The script could not be written.
    #[error("writing the dump: {0}")]
    Write(String),
}
