//! Errors of the control plane.

/// Why a health check of a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connecting to {addr}: {}", describe(source))]
    Connect {
        addr: String,
        source: tokio_postgres::Error,
    },
    #[error("on {addr}: {}", describe(source))]
    Query {
        addr: String,
        source: tokio_postgres::Error,
    },
    #[error("checking {addr}: no answer within {timeout_ms} ms")]
    TimedOut { addr: String, timeout_ms: u128 },
    #[error("checking {addr}: unexpected answer: {what}")]
    Unexpected { addr: String, what: String },
}

/// A driver error with the server's own message, which tokio-postgres leaves out of its
/// `Display` ("db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
