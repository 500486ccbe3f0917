//! Errors of the wire layer.

use thiserror::Error;

/// What can go wrong while reading PostgreSQL protocol messages.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// Not enough bytes yet for a whole message; read more and try again.
    #[error("incomplete message")]
    Incomplete,
    #[error("invalid message length {0}")]
    BadLength(i32),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// A client's large message would take more than `max_message_memory` held by all
    /// connections at once, and no room came free in time.
    #[error("a message of {len} bytes would exceed the {budget} bytes all clients' large messages may hold at once")]
    OverBudget { len: usize, budget: usize },
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A well-formed string that is not UTF-8 (a client_encoding other than UTF8).
    #[error("text that is not valid UTF-8")]
    NotUtf8,
    #[error("unsupported frontend protocol {}.{}", .0 >> 16, .0 & 0xffff)]
    UnsupportedProtocol(i32),
    #[error("connection closed")]
    Closed,
    #[error("unexpected message '{}'", char::from(*.0))]
    Unexpected(u8),
    #[error("i/o error: {0}")]
    Io(String),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e.to_string())
    }
}
