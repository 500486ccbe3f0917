//! Errors of the control plane.

/// Why a health check of a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: tokio_postgres::Error,
    },
    #[error("checking {addr}: {source}")]
    Query {
        addr: String,
        source: tokio_postgres::Error,
    },
    #[error("checking {addr}: no answer within {timeout_ms} ms")]
    TimedOut { addr: String, timeout_ms: u128 },
    #[error("checking {addr}: unexpected answer: {what}")]
    Unexpected { addr: String, what: String },
}
