//! The forms a user's password may take in the file, and their format checks.
//!
//! Verifiers let the file hold no plaintext secret; they use PostgreSQL's
//! formats so they can be copied from `pg_authid.rolpassword`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";
const SCRAM_FORMAT: &str =
    "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>";

/// How a configured password is stored, which decides the authentication
/// methods it can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKind {
    /// The password itself: works with every method.
    Plain,
    /// `"md5"` + 32 lowercase hex digits, md5(password + user name).
    Md5,
    /// `"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"`.
    Scram,
}

impl PasswordKind {
    /// Classifies a password. Anything that starts with `SCRAM-SHA-256$`, or
    /// is `md5` followed by 32 characters, counts as a verifier (whose format
    /// [`crate::load`] checks); everything else is plaintext.
    pub fn of(password: &str) -> PasswordKind {
        if password.starts_with(SCRAM_PREFIX) {
            PasswordKind::Scram
        } else if password.starts_with("md5") && password.chars().count() == 35 {
            PasswordKind::Md5
        } else {
            PasswordKind::Plain
        }
    }
}

/// Checks the format of a verifier, so that a mangled copy-paste is reported
/// at startup instead of as failed logins later. Plaintext always passes.
pub(crate) fn check_verifier(password: &str) -> Result<(), String> {
    match PasswordKind::of(password) {
        PasswordKind::Plain => Ok(()),
        PasswordKind::Md5 => check_md5(password),
        PasswordKind::Scram => check_scram(password).map_err(|why| {
            format!("malformed SCRAM-SHA-256 verifier: {why}; expected {SCRAM_FORMAT}")
        }),
    }
}

fn check_md5(password: &str) -> Result<(), String> {
    let digits = &password[3..];
    if digits.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err("malformed md5 verifier: expected \"md5\" followed by 32 lowercase hex digits".into())
    }
}

fn check_scram(password: &str) -> Result<(), String> {
    let rest = &password[SCRAM_PREFIX.len()..];
    let (iterations_salt, keys) = rest.split_once('$').ok_or("missing '$' before the keys")?;
    let (iterations, salt) = iterations_salt
        .split_once(':')
        .ok_or("missing ':' between iterations and salt")?;
    let (stored_key, server_key) = keys
        .split_once(':')
        .ok_or("missing ':' between StoredKey and ServerKey")?;
    match iterations.parse::<u32>() {
        Ok(n) if n > 0 => {}
        _ => {
            return Err(format!(
                "iteration count {iterations:?} is not a positive number"
            ))
        }
    }
    match STANDARD.decode(salt) {
        Ok(bytes) if !bytes.is_empty() => {}
        _ => return Err("the salt is not non-empty base64".into()),
    }
    for (name, key) in [("StoredKey", stored_key), ("ServerKey", server_key)] {
        match STANDARD.decode(key) {
            Ok(bytes) if bytes.len() == 32 => {}
            _ => return Err(format!("{name} is not 32 bytes of base64")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Password "secret", user "app", salt "pgshard-test-salt".
    const SCRAM: &str = "SCRAM-SHA-256$4096:cGdzaGFyZC10ZXN0LXNhbHQ=$n4uUp6L1SUU8Di+P+AvSalhFAD2am6y0XgVAkO/NK7s=:PvU+oV8C48R5LifpYD472uHW2nzQz7CyS2i0YPg93DU=";
    const MD5: &str = "md56a422f785c9e20873908ce25d1736ae2";

    #[test]
    fn classifies_passwords() {
        assert_eq!(PasswordKind::of("secret"), PasswordKind::Plain);
        assert_eq!(PasswordKind::of("md5short"), PasswordKind::Plain);
        assert_eq!(PasswordKind::of(MD5), PasswordKind::Md5);
        assert_eq!(PasswordKind::of(SCRAM), PasswordKind::Scram);
    }

    #[test]
    fn accepts_well_formed_verifiers() {
        assert_eq!(check_verifier("secret"), Ok(()));
        assert_eq!(check_verifier(MD5), Ok(()));
        assert_eq!(check_verifier(SCRAM), Ok(()));
    }

    #[test]
    fn rejects_malformed_md5() {
        let upper = MD5.replace('f', "F");
        assert_eq!(
            check_verifier(&upper),
            Err(
                "malformed md5 verifier: expected \"md5\" followed by 32 lowercase hex digits"
                    .into()
            )
        );
        assert!(check_verifier("md5zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_err());
    }

    #[test]
    fn rejects_malformed_scram() {
        let cases = [
            ("SCRAM-SHA-256$4096:c2FsdA==", "missing '$' before the keys"),
            (
                "SCRAM-SHA-256$4096c2FsdA==$a:b",
                "missing ':' between iterations and salt",
            ),
            (
                "SCRAM-SHA-256$4096:c2FsdA==$ab",
                "missing ':' between StoredKey and ServerKey",
            ),
            (
                "SCRAM-SHA-256$0:c2FsdA==$a:b",
                "iteration count \"0\" is not a positive number",
            ),
            (
                "SCRAM-SHA-256$4096:!!$a:b",
                "the salt is not non-empty base64",
            ),
            (
                "SCRAM-SHA-256$4096:$a:b",
                "the salt is not non-empty base64",
            ),
            (
                "SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:c2FsdA==",
                "StoredKey is not 32 bytes of base64",
            ),
        ];
        for (verifier, why) in cases {
            assert_eq!(
                check_verifier(verifier),
                Err(format!(
                    "malformed SCRAM-SHA-256 verifier: {why}; expected {SCRAM_FORMAT}"
                )),
                "{verifier}"
            );
        }
        let bad_server_key = format!("{}x", SCRAM.trim_end_matches('='));
        assert!(check_verifier(&bad_server_key)
            .unwrap_err()
            .contains("ServerKey"));
    }
}
