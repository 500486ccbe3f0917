//! Errors of server connections.

use thiserror::Error;

use crate::net::WireError;

/// Why a server connection could not be made or used.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot connect to server {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("timed out connecting to server {0}")]
    ConnectTimeout(String),
    /// A checkout waited on connection attempts made for the pool, and this is why the
    /// last one failed.
    #[error("{0}")]
    LastAttempt(String),
    #[error("the idle connection to server {0} was closed")]
    ConnectionLost(String),
    /// The server refused the login (its SQLSTATE and message).
    #[error("server {addr} refused the login: {message} ({code})")]
    Rejected {
        addr: String,
        code: String,
        message: String,
    },
    #[error("server {addr} asks for a password, and none is configured for user \"{user}\"")]
    NoPassword { addr: String, user: String },
    #[error("server {addr} asks for unsupported authentication: {what}")]
    UnsupportedAuth { addr: String, what: String },
    #[error("server {addr}: {source}")]
    Wire { addr: String, source: WireError },
}
