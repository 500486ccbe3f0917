//! Hash primitives shared by the authentication methods.

use std::borrow::Cow;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of SHA-256 output, and so of every SCRAM key.
pub(super) const KEY_LEN: usize = 32;

/// A SCRAM-SHA-256 key (SaltedPassword, ClientKey, StoredKey, ...).
pub(super) type Key = [u8; KEY_LEN];

/// Compares two byte strings in time that depends only on their lengths,
/// so that checking a password hash does not leak how many leading bytes
/// were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// SHA-256 of `data`.
pub(super) fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// HMAC-SHA-256 keyed with a 32-byte key over the concatenation of `parts`.
pub(super) fn hmac_sha256(key: &Key, parts: &[&[u8]]) -> Key {
    // RFC 2104 pads keys shorter than the 64-byte block with zeros; doing
    // it here lets us use the infallible fixed-size constructor.
    let mut block = [0u8; 64];
    block[..KEY_LEN].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SCRAM's `Hi(Normalize(password), salt, i)`, i.e. PBKDF2-HMAC-SHA-256.
pub(super) fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(&saslprep(password), salt, iterations, &mut out);
    out
}

/// SASLprep (RFC 4013) as PostgreSQL and libpq apply it to SCRAM passwords:
/// a password that is not UTF-8 or contains prohibited characters is used
/// as raw bytes instead of being rejected.
pub(super) fn saslprep(password: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(password) {
        Ok(text) => match stringprep::saslprep(text) {
            Ok(Cow::Borrowed(_)) => Cow::Borrowed(password),
            Ok(Cow::Owned(prepared)) => Cow::Owned(prepared.into_bytes()),
            Err(_) => Cow::Borrowed(password),
        },
        Err(_) => Cow::Borrowed(password),
    }
}

/// Lowercase hex MD5 of the concatenation of `parts`, as ASCII bytes.
pub(super) fn md5_hex(parts: &[&[u8]]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part);
    }
    let digest = md5.finalize();
    let mut out = [0u8; 32];
    for (i, byte) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// `N` bytes from a cryptographically secure RNG, for salts and nonces.
pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn hmac_matches_variable_key_constructor() {
        let key = sha256(b"key");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(b"hello world");
        let expected: Key = mac.finalize().into_bytes().into();
        assert_eq!(hmac_sha256(&key, &[b"hello ", b"world"]), expected);
    }

    #[test]
    fn md5_hex_is_lowercase_hex() {
        assert_eq!(
            &md5_hex(&[b"a", b"bc"]),
            b"900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn saslprep_maps_non_ascii_space_and_keeps_invalid_input() {
        assert_eq!(&*saslprep("a\u{00A0}b".as_bytes()), b"a b");
        assert_eq!(&*saslprep(b"plain"), b"plain");
        // Prohibited (control) character: used unchanged.
        assert_eq!(&*saslprep(b"a\x07b"), b"a\x07b");
        // Not UTF-8: used unchanged.
        assert_eq!(&*saslprep(b"\xff\xfe"), b"\xff\xfe");
    }
}
