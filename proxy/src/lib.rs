//! pgshard's data plane: the client listener, sessions, server pools and the wire protocol.

pub mod admin;
pub mod auth;
pub mod backend;
pub mod context;
pub mod dump;
pub mod error;
pub mod frontend;
pub mod merge;
pub mod metrics;
pub mod net;
pub mod proxy;
pub mod registry;
pub mod routing;
pub mod shutdown;
pub mod tasks;
#[cfg(test)]
mod testing;
pub mod two_phase;

pub use error::ProxyError;
pub use proxy::{start, ProxyHandle};

/// Whether the TLS certificate and key files can serve clients (for `pgshard check`).
pub fn check_tls(certificate: &std::path::Path, key: &std::path::Path) -> Result<(), ProxyError> {
    net::tls::acceptor(certificate, key).map(drop)
}
