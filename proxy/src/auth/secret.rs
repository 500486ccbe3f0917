//! What the proxy knows about a user's password.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::crypto::{self, Key};
use super::AuthError;

/// Iteration count for verifiers the proxy derives itself (PostgreSQL's
/// default `scram_iterations`).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;

/// Salt length for verifiers the proxy derives itself (PostgreSQL's).
const DEFAULT_SALT_LEN: usize = 16;

/// Prefix of a SCRAM verifier in PostgreSQL's `pg_authid` format.
const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// The SCRAM-SHA-256 verifier of a password: salt, iteration count and the
/// two keys the server needs, in PostgreSQL's storage format
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
///
/// Holding only the verifier lets the proxy authenticate SCRAM clients
/// without knowing their password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Key,
    server_key: Key,
}

impl ScramVerifier {
    /// Parses a verifier in PostgreSQL's `pg_authid` format.
    pub fn parse(verifier: &str) -> Result<Self, AuthError> {
        let invalid = AuthError::InvalidSecret;
        let rest = verifier
            .strip_prefix(SCRAM_PREFIX)
            .ok_or(invalid("SCRAM verifier must start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or(invalid("SCRAM verifier lacks the $ before its keys"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or(invalid("SCRAM verifier lacks <iterations>:<salt>"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or(invalid("SCRAM verifier lacks <StoredKey>:<ServerKey>"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| invalid("SCRAM iteration count is not a number"))?;
        if iterations == 0 || iterations > i32::MAX as u32 {
            return Err(invalid("SCRAM iteration count is out of range"));
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| invalid("SCRAM salt is not valid base64"))?;
        if salt.is_empty() {
            return Err(invalid("SCRAM salt is empty"));
        }
        Ok(Self {
            iterations,
            salt,
            stored_key: decode_key(stored_key)?,
            server_key: decode_key(server_key)?,
        })
    }

    /// Derives a verifier for `password` with a fresh random 16-byte salt
    /// and PostgreSQL's default 4096 iterations.
    pub fn from_password(password: &[u8]) -> Self {
        let salt: [u8; DEFAULT_SALT_LEN] = crypto::random_bytes();
        Self::derive(password, &salt, DEFAULT_SCRAM_ITERATIONS)
    }

    /// Derives a verifier with the given salt and iteration count; `pub(super)`
    /// so tests and the mock exchange can be deterministic.
    pub(super) fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = crypto::salted_password(password, salt, iterations);
        let keys = ScramKeys::from_salted_password(&salted);
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }
    }

    /// Builds a verifier from raw parts; `pub(super)` for the mock exchange.
    pub(super) fn from_parts(
        iterations: u32,
        salt: Vec<u8>,
        stored_key: Key,
        server_key: Key,
    ) -> Self {
        Self {
            iterations,
            salt,
            stored_key,
            server_key,
        }
    }

    /// The PBKDF2 iteration count the client must use.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt the client must use.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// `H(ClientKey)`: checks the client proof.
    pub(super) fn stored_key(&self) -> &Key {
        &self.stored_key
    }

    /// `HMAC(SaltedPassword, "Server Key")`: signs the server-final-message.
    pub(super) fn server_key(&self) -> &Key {
        &self.server_key
    }
}

/// The keys derived from a SaltedPassword, as RFC 5802 defines them.
pub(super) struct ScramKeys {
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub(super) stored_key: Key,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub(super) server_key: Key,
}

impl ScramKeys {
    /// Derives StoredKey and ServerKey from SaltedPassword.
    pub(super) fn from_salted_password(salted: &Key) -> Self {
        let client_key = crypto::hmac_sha256(salted, &[b"Client Key"]);
        Self {
            stored_key: crypto::sha256(&client_key),
            server_key: crypto::hmac_sha256(salted, &[b"Server Key"]),
        }
    }
}

fn decode_key(b64: &str) -> Result<Key, AuthError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|_| AuthError::InvalidSecret("SCRAM key is not valid base64"))?;
    Key::try_from(bytes.as_slice())
        .map_err(|_| AuthError::InvalidSecret("SCRAM key is not 32 bytes long"))
}

/// Prints the verifier in PostgreSQL's `pg_authid` format.
impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCRAM_PREFIX}{}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

/// Keeps the keys out of logs.
impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The form in which a user's password is configured; decides which
/// authentication methods can work for that user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The password itself: every method works.
    Plaintext,
    /// A SCRAM-SHA-256 verifier: SCRAM and cleartext work, md5 cannot.
    ScramSha256,
    /// An md5 verifier: md5 and cleartext work, SCRAM cannot.
    Md5,
}

/// What the proxy knows about one user's password, parsed once from the
/// configured string so that each login only does cheap work.
///
/// The configured string is read the way PostgreSQL reads `pg_authid`:
/// `md5` + 32 lowercase hex digits is an md5 verifier, `SCRAM-SHA-256$...`
/// is a SCRAM verifier, anything else is the password itself. Unlike
/// PostgreSQL, a string that looks like a verifier but is malformed is an
/// error rather than silently becoming a password.
#[derive(Clone)]
pub struct ClientSecret {
    inner: Secret,
}

/// The parsed secret; private so that a plaintext password and the
/// verifier derived from it cannot disagree.
#[derive(Clone)]
pub(super) enum Secret {
    /// The password plus a SCRAM verifier derived from it at parse time, so
    /// that a SCRAM login costs no PBKDF2 (connection storms).
    Plaintext {
        password: Vec<u8>,
        scram: ScramVerifier,
    },
    /// A SCRAM-SHA-256 verifier.
    Scram(ScramVerifier),
    /// The lowercase hex of `md5(password || username)`.
    Md5([u8; 32]),
}

impl ClientSecret {
    /// Parses a configured password string (see the type's documentation).
    pub fn parse(password: &str) -> Result<Self, AuthError> {
        let inner = if password.starts_with(SCRAM_PREFIX) {
            Secret::Scram(ScramVerifier::parse(password)?)
        } else if let Some(hash) = md5_verifier(password)? {
            Secret::Md5(hash)
        } else if password.is_empty() {
            return Err(AuthError::InvalidSecret("empty password"));
        } else if password.contains('\0') {
            return Err(AuthError::InvalidSecret("password contains a NUL byte"));
        } else {
            Secret::Plaintext {
                password: password.as_bytes().to_vec(),
                scram: ScramVerifier::from_password(password.as_bytes()),
            }
        };
        Ok(Self { inner })
    }

    /// Which form the secret was configured in.
    pub fn kind(&self) -> SecretKind {
        match self.inner {
            Secret::Plaintext { .. } => SecretKind::Plaintext,
            Secret::Scram(_) => SecretKind::ScramSha256,
            Secret::Md5(_) => SecretKind::Md5,
        }
    }

    /// The SCRAM verifier, or [`AuthError::ScramWithMd5Secret`] if the secret
    /// is an md5 verifier.
    pub fn scram_verifier(&self) -> Result<&ScramVerifier, AuthError> {
        match &self.inner {
            Secret::Plaintext { scram, .. } | Secret::Scram(scram) => Ok(scram),
            Secret::Md5(_) => Err(AuthError::ScramWithMd5Secret),
        }
    }

    /// The parsed secret, for the verification functions.
    pub(super) fn secret(&self) -> &Secret {
        &self.inner
    }
}

/// Keeps the password out of logs.
impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientSecret").field(&self.kind()).finish()
    }
}

/// `Some(hash)` if `s` is `md5` + 32 hex digits. Uppercase hex is an error:
/// PostgreSQL would take it for a password, which is surely not what was
/// meant.
fn md5_verifier(s: &str) -> Result<Option<[u8; 32]>, AuthError> {
    let Some(hex) = s.strip_prefix("md5") else {
        return Ok(None);
    };
    let Ok(hash) = <[u8; 32]>::try_from(hex.as_bytes()) else {
        return Ok(None);
    };
    if !hash.iter().all(u8::is_ascii_hexdigit) {
        return Ok(None);
    }
    if hash.iter().any(u8::is_ascii_uppercase) {
        return Err(AuthError::InvalidSecret(
            "md5 verifier must use lowercase hex digits",
        ));
    }
    Ok(Some(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_scram_verifier() {
        let text = postgres_protocol::password::scram_sha_256(b"hunter2");
        let secret = ClientSecret::parse(&text).unwrap();
        assert_eq!(secret.kind(), SecretKind::ScramSha256);
        let verifier = secret.scram_verifier().unwrap();
        assert_eq!(verifier.iterations(), 4096);
        assert_eq!(verifier.salt().len(), 16);
        assert_eq!(verifier.to_string(), text);
    }

    #[test]
    fn parses_md5_verifier() {
        let text = postgres_protocol::password::md5(b"hunter2", "alice");
        let secret = ClientSecret::parse(&text).unwrap();
        assert_eq!(secret.kind(), SecretKind::Md5);
        assert_eq!(secret.scram_verifier(), Err(AuthError::ScramWithMd5Secret));
    }

    #[test]
    fn plaintext_derives_verifier_once() {
        let secret = ClientSecret::parse("hunter2").unwrap();
        assert_eq!(secret.kind(), SecretKind::Plaintext);
        let verifier = secret.scram_verifier().unwrap();
        assert_eq!(verifier.iterations(), DEFAULT_SCRAM_ITERATIONS);
        assert_eq!(verifier.salt().len(), 16);
        let expected = ScramVerifier::derive(b"hunter2", verifier.salt(), 4096);
        assert_eq!(verifier, &expected);
    }

    #[test]
    fn derived_verifier_matches_postgres_format() {
        // Round trip through the text format produced by the client library.
        let ours = ScramVerifier::from_password(b"pw");
        let reparsed = ScramVerifier::parse(&ours.to_string()).unwrap();
        assert_eq!(ours, reparsed);
    }

    #[test]
    fn near_verifiers_are_plaintext() {
        for text in [
            "md5",
            "md5abc",
            "md5zz3456789012345678901234567890",
            "scram",
        ] {
            let secret = ClientSecret::parse(text).unwrap();
            assert_eq!(secret.kind(), SecretKind::Plaintext, "{text}");
        }
    }

    #[test]
    fn rejects_bad_secrets() {
        let good = postgres_protocol::password::scram_sha_256(b"pw");
        let (head, keys) = good.rsplit_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        let bad = [
            String::new(),
            "pass\0word".to_string(),
            "md5ABCDEF0123456789abcdef0123456789".to_string(),
            "SCRAM-SHA-256$".to_string(),
            "SCRAM-SHA-256$4096:c2FsdA==".to_string(),
            format!("SCRAM-SHA-256$0:c2FsdA==${stored}:{server}"),
            format!("SCRAM-SHA-256$-1:c2FsdA==${stored}:{server}"),
            format!("SCRAM-SHA-256$x:c2FsdA==${stored}:{server}"),
            format!("SCRAM-SHA-256$4096:${stored}:{server}"),
            format!("SCRAM-SHA-256$4096:!!!${stored}:{server}"),
            format!("{head}${stored}"),
            format!("{head}${stored}:c2hvcnQ="),
            format!("{head}$!!:{server}"),
        ];
        for text in bad {
            assert!(
                matches!(ClientSecret::parse(&text), Err(AuthError::InvalidSecret(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let secret = ClientSecret::parse("hunter2").unwrap();
        let shown = format!("{secret:?} {:?}", secret.scram_verifier().unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&STANDARD.encode(secret.scram_verifier().unwrap().stored_key())));
    }
}
