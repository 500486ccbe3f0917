//! Client authentication: the proxy plays the PostgreSQL server towards
//! its clients, so it must check their passwords exactly as PostgreSQL
//! would, or existing drivers and poolers would fail to log in.
//!
//! This module is the pure part of that job, with no I/O: parsing a
//! user's configured secret ([`ClientSecret`]) and checking a client's
//! answer for each password method PostgreSQL offers:
//!
//! - SCRAM-SHA-256 ([`ScramExchange`]), the default and the only method that
//!   neither sends nor stores a password equivalent;
//! - md5 ([`verify_md5`]), for old clients and md5 verifiers;
//! - cleartext ([`verify_cleartext`]), which works with every secret.
//!
//! Every failure is an [`AuthError`]; the connection code turns all of them
//! into PostgreSQL's single `password authentication failed` message and
//! logs the variant.

mod cleartext;
mod crypto;
mod error;
mod md5;
mod scram;
mod scram_message;
mod secret;

pub use cleartext::verify_cleartext;
pub use crypto::constant_time_eq;
pub use error::AuthError;
pub use md5::{md5_salt, verify_md5};
pub use scram::{ScramExchange, SASL_MECHANISMS, SCRAM_SHA_256};
pub use secret::{ClientSecret, ScramVerifier, SecretKind, DEFAULT_SCRAM_ITERATIONS};
