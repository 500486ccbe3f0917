//! The client side: accepting clients, logging them in, and serving their sessions.

pub mod admission;
pub mod batch;
pub mod cancel;
pub mod checkout;
pub mod client;
pub mod dump_client;
pub mod engine;
pub mod expect;
pub mod flow;
pub mod listener;
pub mod login;
pub mod proxy_settings;
pub mod route_decision;
pub mod session;
pub mod setting_statements;
pub mod settings;
pub mod sharded;
pub mod statements;

#[cfg(test)]
mod login_tests;
#[cfg(test)]
mod session_tests;
