//! pgshard's routing logic, free of sockets: what statements are, where they go, and what
//! they leave behind on a server session.
//!
//! [`Classifier::classify`] tells whether a query string may run on a replica
//! ([`Route::Read`]) or needs the primary ([`Route::Write`]), how it opens or closes a
//! transaction ([`TxnControl`]) and which role a `/* pgshard: role=… */` comment asks
//! for. [`proxy_setting`] recognizes `SET pgshard.role = …`, which the proxy handles
//! itself. [`sharding`] maps shard-key values to shards.

mod cache;
mod cache_key;
mod classification;
mod classifier;
mod cursor;
pub mod error;
mod hint;
mod lexer;
mod param;
pub mod plan;
mod proxy_setting;
mod savepoint;
pub mod session_effect;
pub mod sharding;
mod statement;
pub mod statement_stream;
pub mod statements;
mod write_functions;

pub use cache::MAX_CACHED_LEN;
pub use classification::{Classification, Route, TxnControl};
pub use classifier::{classify, Classifier};
pub use cursor::{cursor_command, CursorCommand, FetchCount};
pub use error::HintError;
pub use hint::{statement_hints, Hints};
pub use lexer::contains_ignoring_case;
pub use param::{ProxyKey, ProxyValue, RoleHint};
pub use proxy_setting::{mentions_proxy_settings, proxy_setting, ProxySetting};
pub use savepoint::{savepoint_command, SavepointCommand};
pub use session_effect::{
    deallocated_statement, names_internal_statement, pooled_session_effect, session_effect,
    session_effects, streamed_session_effect, SessionEffect, INTERNAL_NAME_MESSAGE,
    INTERNAL_NAME_REFUSAL, INTERNAL_STATEMENT_PREFIX,
};
pub use statement::and_chain;
pub use statements::{command_count, split_statements};
pub use write_functions::WriteFunctions;
