//! Integers written as text, read the way PostgreSQL 15's `int2in`, `int4in` and
//! `int8in` read them, so a key is refused exactly when the server would refuse it.

use super::{KeyType, ShardingError};

/// Reads `text` as a value of the integer type `key_type`: optional blanks, an
/// optional `+` or `-`, decimal digits, optional blanks. (Underscores, hexadecimal
/// and other prefixes arrived in PostgreSQL 16 and are refused.)
pub(crate) fn parse_integer(key_type: KeyType, text: &str) -> Result<i64, ShardingError> {
    let invalid = || ShardingError::InvalidText {
        key_type,
        text: text.to_owned(),
    };
    let out_of_range = || ShardingError::OutOfRange {
        key_type,
        text: text.to_owned(),
    };
    let (min, max) = key_type.integer_range().ok_or_else(invalid)?;
    let trimmed = text.trim_matches(is_space);
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    // i128 holds every i64 and its negation; stop growing once past them.
    let mut magnitude: i128 = 0;
    for digit in digits.bytes() {
        magnitude = magnitude * 10 + i128::from(digit - b'0');
        if magnitude > i128::from(u64::MAX) {
            return Err(out_of_range());
        }
    }
    let value = if negative { -magnitude } else { magnitude };
    if value < i128::from(min) || value > i128::from(max) {
        return Err(out_of_range());
    }
    Ok(value as i64)
}

/// The blanks C's `isspace` accepts around an integer.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_postgresql_reads() {
        let int8 = |text| parse_integer(KeyType::Int8, text);
        assert_eq!(int8("42"), Ok(42));
        assert_eq!(int8(" \t-42\n "), Ok(-42));
        assert_eq!(int8("+7"), Ok(7));
        assert_eq!(int8("0000000000000000000000000001"), Ok(1));
        assert_eq!(int8("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(int8("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_integer(KeyType::Int4, "-2147483648"), Ok(-2147483648));
        assert_eq!(parse_integer(KeyType::Int2, "32767"), Ok(32767));
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        for text in [
            "", " ", "-", "+", "1.0", "1e3", "0x10", "1_000", "4 2", "--1", "١",
        ] {
            assert_eq!(
                parse_integer(KeyType::Int8, text),
                Err(ShardingError::InvalidText {
                    key_type: KeyType::Int8,
                    text: text.into()
                }),
                "{text:?}"
            );
        }
        for (key_type, text) in [
            (KeyType::Int8, "9223372036854775808"),
            (KeyType::Int8, "-9223372036854775809"),
            (KeyType::Int8, "99999999999999999999999999999999999999999"),
            (KeyType::Int4, "2147483648"),
            (KeyType::Int2, "-32769"),
        ] {
            assert_eq!(
                parse_integer(key_type, text),
                Err(ShardingError::OutOfRange {
                    key_type,
                    text: text.into()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn only_integer_types_read_integers() {
        assert!(matches!(
            parse_integer(KeyType::Text, "1"),
            Err(ShardingError::InvalidText { .. })
        ));
    }
}
