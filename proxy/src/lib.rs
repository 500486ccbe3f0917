//! pgshard's data plane: the client listener, sessions, server pools and the wire protocol.

pub mod auth;
pub mod net;
