//! The partition PostgreSQL's `PARTITION BY HASH` puts a row in, for a one-column key.
//!
//! PostgreSQL hashes the key with the type's extended hash function and the seed
//! `HASH_PARTITION_SEED` (`hashint8extended`, `hashint4extended` or `hashint2extended`
//! for integers, `hashtextextended` for text, `uuid_hash_extended` for uuid), folds the
//! column hashes into one with `hash_combine64` starting from 0 and takes the remainder
//! by the modulus as an unsigned 64-bit number (`compute_partition_hash_value` and
//! `get_partition_for_tuple` in src/backend/partitioning/partbounds.c). A NULL column
//! is skipped, so an all-NULL key hashes to 0 and lands in remainder 0.
//!
//! Text and uuid hashes depend on the server's byte order; see [`super::lookup3`].

use super::lookup3::{hash_bytes_extended, hash_uint32_extended};
use super::KeyValue;

/// PostgreSQL's `HASH_PARTITION_SEED` (src/include/catalog/partition.h).
pub const HASH_PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// The row hash PostgreSQL computes for a one-column partition key holding `value`:
/// `hash_combine64(0, extended_hash(value, HASH_PARTITION_SEED))`, or 0 for NULL.
///
/// The partition (and with the `hash` function, the shard) is this modulo the number
/// of partitions; the `ring` function places keys on its ring by this value too.
pub fn partition_hash(value: &KeyValue) -> u64 {
    extended_hash(value, HASH_PARTITION_SEED).map_or(0, |hash| hash_combine64(0, hash))
}

/// The remainder of the partition `PARTITION BY HASH` with `MODULUS modulus` puts
/// `value` in: the index of the `FOR VALUES WITH (MODULUS modulus, REMAINDER r)`
/// partition. `modulus` must not be 0.
pub fn hash_partition(value: &KeyValue, modulus: usize) -> usize {
    (partition_hash(value) % modulus as u64) as usize
}

/// The type's extended hash with `seed`; `None` for NULL.
fn extended_hash(value: &KeyValue, seed: u64) -> Option<u64> {
    match value {
        KeyValue::Null => None,
        KeyValue::Int(value) => Some(hash_uint32_extended(fold_int8(*value), seed)),
        // Deterministic collations hash the bytes as stored; nondeterministic
        // (ICU) collations hash a sort key instead and are not supported.
        KeyValue::Text(text) => Some(hash_bytes_extended(text.as_bytes(), seed)),
        KeyValue::Uuid(bytes) => Some(hash_bytes_extended(bytes, seed)),
    }
}

/// `hashint8`'s folding of 64 bits into 32: the high half, complemented for negative
/// values, is xor-ed into the low half. Every value that fits in 32 bits folds to
/// itself (as `int4` or `int2` hash it), so all integer types hash alike.
fn fold_int8(value: i64) -> u32 {
    let low = value as u32;
    let high = (value >> 32) as u32;
    low ^ if value >= 0 { high } else { !high }
}

/// `hash_combine64`: folds hash `b` into the running hash `a`.
fn hash_combine64(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(0x49a0_f4dd_15e5_a8e3)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7)
}

#[cfg(test)]
mod tests {
    use super::super::pg15_vectors::{INT2, INT4, INT8, MODULI, TEXT, UUID};
    use super::*;
    use pgshard_config::parse_uuid;

    /// Checks one observed row: PostgreSQL's extended hash of the value and the
    /// partition it chose for each modulus in [`MODULI`].
    fn check(value: KeyValue, extended: i64, remainders: [usize; 4]) {
        assert_eq!(
            extended_hash(&value, HASH_PARTITION_SEED).map(|hash| hash as i64),
            Some(extended),
            "extended hash of {value}"
        );
        for (modulus, remainder) in MODULI.into_iter().zip(remainders) {
            assert_eq!(
                hash_partition(&value, modulus),
                remainder,
                "{value} modulo {modulus}"
            );
        }
    }

    #[test]
    fn bigint_keys_match_postgresql() {
        for &(value, extended, remainders) in INT8 {
            check(KeyValue::Int(value), extended, remainders);
        }
    }

    #[test]
    fn integer_and_smallint_keys_match_postgresql() {
        for &(value, extended, remainders) in INT4 {
            check(KeyValue::Int(value.into()), extended, remainders);
        }
        for &(value, extended, remainders) in INT2 {
            check(KeyValue::Int(value.into()), extended, remainders);
        }
    }

    #[test]
    fn text_keys_match_postgresql() {
        for &(value, extended, remainders) in TEXT {
            check(KeyValue::Text(value.into()), extended, remainders);
        }
    }

    #[test]
    fn uuid_keys_match_postgresql() {
        for &(value, extended, remainders) in UUID {
            check(
                KeyValue::Uuid(parse_uuid(value).unwrap()),
                extended,
                remainders,
            );
        }
    }

    #[test]
    fn null_is_in_remainder_zero() {
        assert_eq!(partition_hash(&KeyValue::Null), 0);
        for modulus in 1..10 {
            assert_eq!(hash_partition(&KeyValue::Null, modulus), 0);
        }
    }

    #[test]
    fn one_key_column_adds_the_combining_constant() {
        // hash_combine64(0, h) shifts nothing in from the running hash.
        assert_eq!(hash_combine64(0, 1), 0x49a0_f4dd_15e5_a8e4);
        assert_eq!(hash_combine64(0, u64::MAX), 0x49a0_f4dd_15e5_a8e2);
    }
}
