//! PostgreSQL's cleartext `password` method: the client sends the password
//! itself, which can be checked against every kind of secret.

use super::crypto::{self, constant_time_eq};
use super::secret::{ScramKeys, Secret};
use super::{AuthError, ClientSecret};

/// Checks a cleartext `PasswordMessage` (without its NUL terminator) from
/// the startup `user`.
///
/// Against a SCRAM verifier this recomputes SaltedPassword with the
/// verifier's salt and iterations, as PostgreSQL does, and so costs one
/// PBKDF2; against a plaintext or md5 secret it is cheap.
pub fn verify_cleartext(
    secret: &ClientSecret,
    user: &str,
    password: &[u8],
) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    if password.contains(&0) {
        return Err(AuthError::NulInPassword);
    }
    let matches = match secret.secret() {
        // Compare SASLprep-ed digests: equal to what a SCRAM check would
        // decide, and the comparison does not leak the password's length.
        Secret::Plaintext {
            password: stored, ..
        } => constant_time_eq(
            &crypto::sha256(&crypto::saslprep(password)),
            &crypto::sha256(&crypto::saslprep(stored)),
        ),
        Secret::Scram(verifier) => {
            let salted = crypto::salted_password(password, verifier.salt(), verifier.iterations());
            let keys = ScramKeys::from_salted_password(&salted);
            // Both must match; `&` rather than `&&` keeps it branch-free.
            constant_time_eq(&keys.stored_key, verifier.stored_key())
                & constant_time_eq(&keys.server_key, verifier.server_key())
        }
        Secret::Md5(hash) => constant_time_eq(&crypto::md5_hex(&[password, user.as_bytes()]), hash),
    };
    if matches {
        Ok(())
    } else {
        Err(AuthError::PasswordMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(password: &str, user: &str) -> [ClientSecret; 3] {
        [
            ClientSecret::parse(password).unwrap(),
            ClientSecret::parse(&postgres_protocol::password::scram_sha_256(
                password.as_bytes(),
            ))
            .unwrap(),
            ClientSecret::parse(&postgres_protocol::password::md5(password.as_bytes(), user))
                .unwrap(),
        ]
    }

    #[test]
    fn accepts_correct_password_for_every_secret_kind() {
        for secret in secrets("s3cret", "alice") {
            verify_cleartext(&secret, "alice", b"s3cret").unwrap();
        }
    }

    #[test]
    fn rejects_wrong_password_for_every_secret_kind() {
        for secret in secrets("s3cret", "alice") {
            for wrong in [b"S3cret".as_slice(), b"s3cre", b"s3cret ", b"s3cret\x01"] {
                assert_eq!(
                    verify_cleartext(&secret, "alice", wrong),
                    Err(AuthError::PasswordMismatch),
                    "{secret:?} {wrong:?}"
                );
            }
        }
    }

    #[test]
    fn md5_secret_is_bound_to_its_user() {
        let [.., md5] = secrets("s3cret", "alice");
        assert_eq!(
            verify_cleartext(&md5, "bob", b"s3cret"),
            Err(AuthError::PasswordMismatch)
        );
    }

    #[test]
    fn rejects_empty_password() {
        for secret in secrets("s3cret", "alice") {
            assert_eq!(
                verify_cleartext(&secret, "alice", b""),
                Err(AuthError::EmptyPassword)
            );
        }
    }

    #[test]
    fn rejects_nul_in_password() {
        // HMAC pads keys with zeros, so "s3cret\0" would otherwise pass a
        // SCRAM verifier of "s3cret".
        for secret in secrets("s3cret", "alice") {
            assert_eq!(
                verify_cleartext(&secret, "alice", b"s3cret\0"),
                Err(AuthError::NulInPassword)
            );
        }
    }

    #[test]
    fn plaintext_and_scram_agree_on_saslprep() {
        let [plain, scram, _] = secrets("pass\u{00A0}word", "alice");
        for secret in [plain, scram] {
            verify_cleartext(&secret, "alice", b"pass word").unwrap();
            verify_cleartext(&secret, "alice", "pass\u{00A0}word".as_bytes()).unwrap();
        }
    }

    #[test]
    fn non_utf8_password_is_compared_as_bytes() {
        let verifier = postgres_protocol::password::scram_sha_256(b"\xffpw");
        let secret = ClientSecret::parse(&verifier).unwrap();
        verify_cleartext(&secret, "alice", b"\xffpw").unwrap();
        assert_eq!(
            verify_cleartext(&secret, "alice", b"\xfepw"),
            Err(AuthError::PasswordMismatch)
        );
    }
}
