//! PostgreSQL's md5 password method.
//!
//! The server sends `AuthenticationMD5Password` with a random 4-byte salt;
//! the client answers `"md5" + hex(md5(hex(md5(password || user)) || salt))`.
//! The server therefore needs `md5(password || user)`: the md5 verifier
//! itself, or computed from a plaintext password. A SCRAM verifier cannot
//! provide it.

use super::crypto::{self, constant_time_eq};
use super::secret::Secret;
use super::{AuthError, ClientSecret};

/// Length of the hex digest after the `md5` prefix of a response.
const HEX_LEN: usize = 32;

/// A fresh random salt for `AuthenticationMD5Password`.
pub fn md5_salt() -> [u8; 4] {
    crypto::random_bytes()
}

/// Checks a client's md5 `PasswordMessage` (without its NUL terminator)
/// for the startup `user` against the salt the proxy sent.
pub fn verify_md5(
    secret: &ClientSecret,
    user: &str,
    salt: [u8; 4],
    response: &[u8],
) -> Result<(), AuthError> {
    let inner = match secret.secret() {
        Secret::Plaintext { password, .. } => crypto::md5_hex(&[password, user.as_bytes()]),
        Secret::Md5(hash) => *hash,
        Secret::Scram(_) => return Err(AuthError::Md5WithScramSecret),
    };
    if response.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    let hex = match response.strip_prefix(b"md5") {
        Some(hex) if hex.len() == HEX_LEN => hex,
        _ => return Err(AuthError::MalformedMd5Response),
    };
    let expected = crypto::md5_hex(&[&inner, &salt]);
    if constant_time_eq(hex, &expected) {
        Ok(())
    } else {
        Err(AuthError::PasswordMismatch)
    }
}

#[cfg(test)]
mod tests {
    use postgres_protocol::authentication::md5_hash;

    use super::*;

    const SALT: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

    fn secrets() -> [ClientSecret; 2] {
        [
            ClientSecret::parse("s3cret").unwrap(),
            ClientSecret::parse(&postgres_protocol::password::md5(b"s3cret", "alice")).unwrap(),
        ]
    }

    #[test]
    fn accepts_client_library_hash() {
        for secret in secrets() {
            let response = md5_hash(b"alice", b"s3cret", SALT);
            verify_md5(&secret, "alice", SALT, response.as_bytes()).unwrap();
        }
    }

    #[test]
    fn random_salts_work() {
        let secret = ClientSecret::parse("s3cret").unwrap();
        for _ in 0..8 {
            let salt = md5_salt();
            let response = md5_hash(b"alice", b"s3cret", salt);
            verify_md5(&secret, "alice", salt, response.as_bytes()).unwrap();
        }
    }

    #[test]
    fn rejects_wrong_password_user_or_salt() {
        for secret in secrets() {
            let cases = [
                md5_hash(b"alice", b"S3cret", SALT),
                md5_hash(b"bob", b"s3cret", SALT),
                md5_hash(b"alice", b"s3cret", [0, 0, 0, 0]),
            ];
            for response in cases {
                assert_eq!(
                    verify_md5(&secret, "alice", SALT, response.as_bytes()),
                    Err(AuthError::PasswordMismatch)
                );
            }
        }
    }

    #[test]
    fn rejects_malformed_responses() {
        let good = md5_hash(b"alice", b"s3cret", SALT);
        let secret = ClientSecret::parse("s3cret").unwrap();
        assert_eq!(
            verify_md5(&secret, "alice", SALT, b""),
            Err(AuthError::EmptyPassword)
        );
        let cases = [
            &good.as_bytes()[..34],
            &good.as_bytes()[3..],
            b"s3cret".as_slice(),
            b"xyz0123456789abcdef0123456789abcdef".as_slice(),
        ];
        for response in cases {
            assert_eq!(
                verify_md5(&secret, "alice", SALT, response),
                Err(AuthError::MalformedMd5Response)
            );
        }
        let mut with_nul = good.into_bytes();
        with_nul.push(0);
        assert_eq!(
            verify_md5(&secret, "alice", SALT, &with_nul),
            Err(AuthError::MalformedMd5Response)
        );
    }

    #[test]
    fn scram_secret_cannot_do_md5() {
        let verifier = postgres_protocol::password::scram_sha_256(b"s3cret");
        let secret = ClientSecret::parse(&verifier).unwrap();
        let response = md5_hash(b"alice", b"s3cret", SALT);
        assert_eq!(
            verify_md5(&secret, "alice", SALT, response.as_bytes()),
            Err(AuthError::Md5WithScramSecret)
        );
    }
}
