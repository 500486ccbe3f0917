//! The PostgreSQL wire protocol as the proxy needs it: framing raw messages, the startup
//! packet, builders for the messages the proxy sends itself, and TLS for clients.

pub mod client_stream;
pub mod connection;
pub mod error;
pub mod frame;
pub mod messages;
pub mod startup;
pub mod tls;

pub use client_stream::ClientStream;
pub use connection::Connection;
pub use error::WireError;
pub use frame::{BodyReader, Frame};
pub use messages::Severity;
