//! The PostgreSQL wire protocol as the proxy needs it: framing raw messages, the startup
//! packet, builders for the messages the proxy sends itself, and TLS for clients.

pub mod budget;
pub mod connection;
pub mod error;
pub mod frame;
pub mod layout;
pub mod messages;
pub mod startup;
pub mod stream;
pub mod streamed;
pub mod tls;

pub use budget::MessageBudget;
pub use connection::{ClientMessage, Connection, Unasked};
pub use error::WireError;
pub use frame::{BodyReader, Frame};
pub use messages::Severity;
pub use stream::{ClientStream, MaybeTls, ServerStream};
pub use streamed::StreamedHead;
