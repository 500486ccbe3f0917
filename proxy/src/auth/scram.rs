//! Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL runs it.
//!
//! The proxy sends `AuthenticationSASL` listing [`SASL_MECHANISMS`], then
//! feeds the client's `SASLInitialResponse` data to
//! [`ScramExchange::server_first`] (answer: `AuthenticationSASLContinue`)
//! and its `SASLResponse` to [`ScramExchange::server_final`] (answer:
//! `AuthenticationSASLFinal`, then `AuthenticationOk`). Any error means
//! authentication failed.

use std::mem;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::crypto::{self, constant_time_eq};
use super::scram_message::{parse_client_final, parse_client_first, Gs2Flag};
use super::secret::DEFAULT_SCRAM_ITERATIONS;
use super::{AuthError, ClientSecret, ScramVerifier};

/// The SASL mechanism name of SCRAM-SHA-256.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Mechanisms to list in `AuthenticationSASL`. No `SCRAM-SHA-256-PLUS`:
/// channel binding needs TLS, which the proxy does not terminate yet.
pub const SASL_MECHANISMS: &[&str] = &[SCRAM_SHA_256];

/// Raw length of the server's share of the nonce (PostgreSQL's).
const SERVER_NONCE_LEN: usize = 18;

/// Salt length of a mock exchange, the same as a real verifier's.
const MOCK_SALT_LEN: usize = 16;

/// One client's SCRAM-SHA-256 authentication, as a two-step state machine:
/// [`server_first`](Self::server_first) then
/// [`server_final`](Self::server_final). A failed step fails the whole
/// exchange; later calls return [`AuthError::ExchangeOutOfOrder`].
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct ScramExchange {
    verifier: ScramVerifier,
    /// Set for a mock exchange, which must fail however the client answers.
    mock: bool,
    state: State,
}

/// Where the exchange stands, with what the next step needs.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        gs2_flag: Gs2Flag,
        client_first_bare: Vec<u8>,
        server_first: Vec<u8>,
        nonce: String,
    },
    Authenticated,
    Failed,
}

impl ScramExchange {
    /// Starts an exchange that authenticates against `verifier`.
    pub fn new(verifier: &ScramVerifier) -> Self {
        Self {
            verifier: verifier.clone(),
            mock: false,
            state: State::AwaitingClientFirst,
        }
    }

    /// Starts an exchange for a user's configured secret; fails with
    /// [`AuthError::ScramWithMd5Secret`] for an md5 verifier, from which no
    /// SCRAM keys can be derived.
    pub fn for_secret(secret: &ClientSecret) -> Result<Self, AuthError> {
        Ok(Self::new(secret.scram_verifier()?))
    }

    /// Starts an exchange that runs like a real one but always ends in
    /// [`AuthError::MockExchange`], for a user that does not exist or has no
    /// SCRAM secret. Answering such users differently would tell a client
    /// which user names exist; PostgreSQL mocks the exchange the same way.
    ///
    /// `mock_key` should be a random secret fixed for the life of the proxy:
    /// the fake salt is derived from it and `user`, so it stays the same
    /// across attempts like a real salt but cannot be predicted.
    pub fn mock(user: &str, mock_key: &[u8]) -> Self {
        let digest = crypto::sha256(&[mock_key, user.as_bytes()].concat());
        let salt = digest[..MOCK_SALT_LEN].to_vec();
        let verifier = ScramVerifier::from_parts(DEFAULT_SCRAM_ITERATIONS, salt, [0; 32], [0; 32]);
        Self {
            mock: true,
            ..Self::new(&verifier)
        }
    }

    /// Checks the mechanism the client chose in `SASLInitialResponse`.
    pub fn check_mechanism(mechanism: &str) -> Result<(), AuthError> {
        if SASL_MECHANISMS.contains(&mechanism) {
            Ok(())
        } else {
            Err(AuthError::UnsupportedMechanism(mechanism.to_string()))
        }
    }

    /// Takes client-first-message (the data of `SASLInitialResponse`) and
    /// returns server-first-message `r=<nonce>,s=<salt>,i=<iterations>`.
    pub fn server_first(&mut self, client_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(
            mem::replace(&mut self.state, State::Failed),
            State::AwaitingClientFirst
        ) {
            return Err(AuthError::ExchangeOutOfOrder);
        }
        let first = parse_client_first(client_first)?;
        let server_nonce = crypto::random_bytes::<SERVER_NONCE_LEN>();
        let nonce = format!("{}{}", first.nonce, STANDARD.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(self.verifier.salt()),
            self.verifier.iterations()
        )
        .into_bytes();
        self.state = State::AwaitingClientFinal {
            gs2_flag: first.gs2_flag,
            client_first_bare: first.bare.to_vec(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first)
    }

    /// Takes client-final-message (the data of `SASLResponse`), checks the
    /// client proof, and returns server-final-message `v=<signature>`.
    /// `Ok` means the client is authenticated.
    pub fn server_final(&mut self, client_final: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitingClientFinal {
            gs2_flag,
            client_first_bare,
            server_first,
            nonce,
        } = mem::replace(&mut self.state, State::Failed)
        else {
            return Err(AuthError::ExchangeOutOfOrder);
        };
        let last = parse_client_final(client_final)?;
        if last.channel_binding != gs2_flag.channel_binding_attr() {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if last.nonce != nonce.as_bytes() {
            return Err(AuthError::NonceMismatch);
        }
        let auth_message: [&[u8]; 5] = [
            &client_first_bare,
            b",",
            &server_first,
            b",",
            last.without_proof,
        ];
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the
        // proof is right if H(ClientKey) == StoredKey.
        let signature = crypto::hmac_sha256(self.verifier.stored_key(), &auth_message);
        let mut client_key = last.proof;
        for (key, sig) in client_key.iter_mut().zip(signature) {
            *key ^= sig;
        }
        let proof_ok = constant_time_eq(&crypto::sha256(&client_key), self.verifier.stored_key());
        if self.mock {
            return Err(AuthError::MockExchange);
        }
        if !proof_ok {
            return Err(AuthError::PasswordMismatch);
        }
        let server_signature = crypto::hmac_sha256(self.verifier.server_key(), &auth_message);
        self.state = State::Authenticated;
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }

    /// Whether the exchange completed and the client proved its password.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated)
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
