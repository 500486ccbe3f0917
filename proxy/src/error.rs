//! Errors that stop the proxy as a whole (not one client).

use thiserror::Error;

/// Why the proxy cannot start or keep running.
#[derive(Debug, Error)]
pub enum ProxyError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}
