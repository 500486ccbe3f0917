//! pgshard's routing logic, free of sockets: what statements are, where they go, and what
//! they leave behind on a server session.
//!
//! [`statement_hints`] reads the role a `/* pgshard: role=… */` comment asks for;
//! [`proxy_setting`] recognizes `SET pgshard.role = …`, which the proxy handles itself.

pub mod error;
mod hint;
mod lexer;
mod param;
mod proxy_setting;
pub mod session_effect;
pub mod statements;

pub use error::HintError;
pub use hint::{statement_hints, Hints};
pub use param::{ProxyKey, ProxyValue, RoleHint};
pub use proxy_setting::{proxy_setting, ProxySetting};
pub use session_effect::{session_effect, session_effects, SessionEffect};
pub use statements::split_statements;
