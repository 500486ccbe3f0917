//! Bob Jenkins' lookup3 hash in the variant PostgreSQL uses (`hash_bytes_extended` and
//! `hash_bytes_uint32_extended` in src/common/hashfn.c), which hash partitioning is
//! built on.
//!
//! PostgreSQL's variant differs from the published lookup3 in ways that change every
//! result, so each is kept here: the start value adds 3923095, a key of exactly 12 bytes
//! is mixed as a full block and then finalized with nothing left over, and the final
//! mix always runs, even for an empty key. The 64-bit result is `b` in the high half
//! and `c` in the low half.
//!
//! # Byte order
//!
//! PostgreSQL reads the key's bytes as 32-bit words in the server's native byte order,
//! so the same text or uuid hashes differently on big-endian servers. This module
//! computes what little-endian servers (x86-64, AArch64, POWER in little-endian mode)
//! compute, whatever the proxy's own byte order. Hashes of 32-bit integers
//! ([`hash_uint32_extended`]) take the value, not its bytes, and are the same on
//! every server.

/// lookup3's internal state.
struct State {
    a: u32,
    b: u32,
    c: u32,
}

impl State {
    /// The state before any key bytes: every word starts from the golden ratio plus
    /// the key length plus PostgreSQL's own constant; a non-zero seed is mixed in as
    /// if it were a first 12-byte block of (high half, low half, 0).
    fn new(len: u32, seed: u64) -> State {
        let start = 0x9e37_79b9_u32.wrapping_add(len).wrapping_add(3_923_095);
        let mut state = State {
            a: start,
            b: start,
            c: start,
        };
        if seed != 0 {
            state.a = state.a.wrapping_add((seed >> 32) as u32);
            state.b = state.b.wrapping_add(seed as u32);
            state.mix();
        }
        state
    }

    /// Adds three words of key.
    fn add(&mut self, a: u32, b: u32, c: u32) {
        self.a = self.a.wrapping_add(a);
        self.b = self.b.wrapping_add(b);
        self.c = self.c.wrapping_add(c);
    }

    /// lookup3's reversible `mix` of the three words, between 12-byte blocks.
    fn mix(&mut self) {
        let State { a, b, c } = self;
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }

    /// lookup3's `final` mix, then the 64-bit result `b:c`.
    fn finish(mut self) -> u64 {
        let State { a, b, c } = &mut self;
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(14));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(11));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(25));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(16));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(4));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(14));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(24));
        (u64::from(self.b) << 32) | u64::from(self.c)
    }
}

/// `hash_bytes_extended(bytes, len, seed)` as computed on a little-endian server.
pub(crate) fn hash_bytes_extended(bytes: &[u8], seed: u64) -> u64 {
    // PostgreSQL passes the length as an int; keys are at most 1GB, so it fits.
    let mut state = State::new(bytes.len() as u32, seed);
    let mut blocks = bytes.chunks_exact(12);
    for block in &mut blocks {
        state.add(word(&block[0..4]), word(&block[4..8]), word(&block[8..12]));
        state.mix();
    }
    // The last 0 to 11 bytes, zero-padded: the lowest byte of c is left alone (the
    // published lookup3 kept the length there), so c's bytes are shifted up by one.
    let mut tail = [0u8; 12];
    tail[..blocks.remainder().len()].copy_from_slice(blocks.remainder());
    state.add(
        word(&tail[0..4]),
        word(&tail[4..8]),
        word(&tail[8..12]) << 8,
    );
    state.finish()
}

/// `hash_bytes_uint32_extended(k, seed)`: the hash of a 4-byte key, taken from the
/// value rather than its bytes.
pub(crate) fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let mut state = State::new(4, seed);
    state.add(k, 0, 0);
    state.finish()
}

/// Four bytes read as a little-endian word.
fn word(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_four_byte_key_hashes_like_its_little_endian_value() {
        for (k, seed) in [(0, 0), (42, 0), (0xdead_beef, 7), (u32::MAX, u64::MAX)] {
            assert_eq!(
                hash_bytes_extended(&k.to_le_bytes(), seed),
                hash_uint32_extended(k, seed)
            );
        }
    }

    #[test]
    fn every_byte_and_the_length_matter() {
        let base = hash_bytes_extended(b"0123456789abcdefghijklmnopqrstuvwxyz", 1);
        for i in 0..36 {
            let mut key = *b"0123456789abcdefghijklmnopqrstuvwxyz";
            key[i] ^= 1;
            assert_ne!(hash_bytes_extended(&key, 1), base, "byte {i}");
        }
        assert_ne!(hash_bytes_extended(b"", 1), hash_bytes_extended(b"\0", 1));
        assert_ne!(
            hash_bytes_extended(b"ab", 1),
            hash_bytes_extended(b"ab\0", 1)
        );
    }

    /// `hashtextextended(k, seed)` and `hashint4extended(k, seed)` (which call these
    /// two functions) as observed on PostgreSQL 15 on x86-64, for seeds that take
    /// each path: none (0), only the low half, only the high half, all bits.
    #[test]
    fn matches_postgresql_for_every_kind_of_seed() {
        let bytes: [(&str, [i64; 3]); 5] = [
            (
                "",
                [
                    -6939563903564495251,
                    -150071773020461347,
                    2274062085362124585,
                ],
            ),
            (
                "a",
                [
                    3591986179850072241,
                    3325245193489759299,
                    -5815267436313803741,
                ],
            ),
            (
                "abcdefghijkl",
                [
                    -7556637188122330412,
                    -6429754808531195817,
                    7343492086963265099,
                ],
            ),
            (
                "hello world!",
                [
                    -2866487628948787489,
                    2892710398881624464,
                    3341531859464092372,
                ],
            ),
            (
                "0123456789abcdefghijklmnopqrstuvwxyz",
                [
                    2599983508539421163,
                    -2406378843534258124,
                    -800135505864320270,
                ],
            ),
        ];
        for (key, expected) in bytes {
            for (seed, hash) in [0, 1, 1 << 32].into_iter().zip(expected) {
                assert_eq!(
                    hash_bytes_extended(key.as_bytes(), seed) as i64,
                    hash,
                    "{key:?} seed {seed}"
                );
            }
        }
        let ints: [(i32, [i64; 2]); 3] = [
            (0, [4154612158245552303, -4140905993450701875]),
            (42, [8010225493015854792, -6198169983862266934]),
            (-7, [-4284878795861022465, 3845963573789911868]),
        ];
        for (k, expected) in ints {
            for (seed, hash) in [0, u64::MAX].into_iter().zip(expected) {
                assert_eq!(
                    hash_uint32_extended(k as u32, seed) as i64,
                    hash,
                    "{k} seed {seed}"
                );
            }
        }
    }
}
