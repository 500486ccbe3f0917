//! The PostgreSQL wire protocol as the proxy needs it: framing raw messages, the startup
//! packet, and builders for the messages the proxy sends itself.

pub mod connection;
pub mod error;
pub mod frame;
pub mod messages;
pub mod startup;

pub use connection::Connection;
pub use error::WireError;
pub use frame::{BodyReader, Frame};
pub use messages::Severity;
