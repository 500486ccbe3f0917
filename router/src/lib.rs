//! pgshard's routing logic, free of sockets: what statements are, where they go, and what
//! they leave behind on a server session.

pub mod session_effect;
pub mod statements;

pub use session_effect::{session_effect, session_effects, SessionEffect};
pub use statements::split_statements;
