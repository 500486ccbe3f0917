//! Why a client authentication attempt failed.

use thiserror::Error;

/// Why authenticating a client (or loading a user's configured secret)
/// failed.
///
/// The proxy never shows these details to the client: like PostgreSQL it
/// answers every failure with `password authentication failed for user
/// "<name>"` (SQLSTATE 28P01), so that a client cannot probe which users
/// exist or how their secrets are stored. The variants exist so that the
/// server log says what actually went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The configured password string cannot be used (bad SCRAM verifier,
    /// bad md5 verifier, empty password).
    #[error("invalid configured password secret: {0}")]
    InvalidSecret(&'static str),

    /// The client sent an empty password; PostgreSQL never accepts one.
    #[error("client sent an empty password")]
    EmptyPassword,

    /// The client's password contains a NUL byte, which PostgreSQL's wire
    /// protocol cannot carry (and which HMAC key padding would ignore).
    #[error("client password contains a NUL byte")]
    NulInPassword,

    /// The password does not match the user's secret.
    #[error("password does not match")]
    PasswordMismatch,

    /// The client picked a SASL mechanism that the proxy did not offer.
    #[error("client selected SASL mechanism {0:?}, but only SCRAM-SHA-256 is offered")]
    UnsupportedMechanism(String),

    /// A SCRAM message does not follow the RFC 5802 grammar.
    #[error("malformed SCRAM message: {0}")]
    MalformedScramMessage(&'static str),

    /// The client asked for channel binding (`p=` GS2 flag), which needs
    /// TLS and `SCRAM-SHA-256-PLUS`; the proxy offers neither.
    #[error("client requires SCRAM channel binding, which is not supported")]
    ChannelBindingNotSupported,

    /// The client sent an authorization identity (`a=`); like PostgreSQL,
    /// the proxy does not support one.
    #[error("client uses an authorization identity, which is not supported")]
    AuthorizationIdentityNotSupported,

    /// The client-first-message carries a mandatory extension (`m=`).
    #[error("client requires an unsupported SCRAM extension")]
    UnsupportedScramExtension,

    /// The `c=` attribute of client-final-message does not encode the GS2
    /// header the client sent in client-first-message.
    #[error("SCRAM channel binding data does not match the GS2 header")]
    ChannelBindingMismatch,

    /// The `r=` nonce of client-final-message is not the nonce the server
    /// sent in server-first-message.
    #[error("SCRAM nonce in client-final-message does not match")]
    NonceMismatch,

    /// A SCRAM exchange step was called twice, out of order, or after the
    /// exchange had already failed.
    #[error("SCRAM exchange step called out of order")]
    ExchangeOutOfOrder,

    /// The exchange was a mock run for a user that has no usable SCRAM
    /// secret (unknown user, or an md5 verifier); it always fails.
    #[error("SCRAM exchange was a mock for a user without a SCRAM secret")]
    MockExchange,

    /// SCRAM was requested for a user whose secret is an md5 verifier,
    /// from which no SCRAM keys can be derived.
    #[error("user has an md5 password verifier, which cannot be used for SCRAM authentication")]
    ScramWithMd5Secret,

    /// md5 was requested for a user whose secret is a SCRAM verifier, from
    /// which no md5 hash can be derived.
    #[error("user has a SCRAM password verifier, which cannot be used for md5 authentication")]
    Md5WithScramSecret,

    /// The md5 password response is not `md5` followed by 32 hex digits.
    #[error("malformed md5 password response")]
    MalformedMd5Response,
}
