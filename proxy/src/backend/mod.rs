//! The server side: logged-in connections to PostgreSQL servers and their pools.

pub mod authenticate;
pub mod error;
pub mod pool;
pub mod prepared;
pub mod server;

pub use error::ServerError;
pub use pool::{CheckoutError, PoolSettings, PooledServer, Pools};
pub use server::{ServerConnection, ServerTarget};
