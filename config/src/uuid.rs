//! UUIDs written the ways PostgreSQL's `uuid` input accepts them, so a shard-list value
//! in the file and a key in a query are read by the same rules.

/// Parses a UUID as PostgreSQL's `uuid_in` does: 32 hexadecimal digits in either case,
/// with an optional hyphen after any group of four digits, optionally inside braces,
/// and nothing else (no blanks). `"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"`,
/// `"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"` and `"a0eebc999c0b4ef8bb6d6bb9bd380a11"`
/// are the same UUID.
///
/// Returns the 16 bytes in the order they are written, which is also the order
/// PostgreSQL stores, hashes and compares them in. The error is PostgreSQL's message.
pub fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    let invalid = || format!("invalid input syntax for type uuid: {text:?}");
    let (braced, mut rest) = match text.strip_prefix('{') {
        Some(inner) => (true, inner.as_bytes()),
        None => (false, text.as_bytes()),
    };
    let mut uuid = [0u8; 16];
    for (i, byte) in uuid.iter_mut().enumerate() {
        let [high, low, tail @ ..] = rest else {
            return Err(invalid());
        };
        *byte =
            (hex_digit(*high).ok_or_else(invalid)? << 4) | hex_digit(*low).ok_or_else(invalid)?;
        rest = tail;
        // A hyphen may follow every second byte, but not the last one.
        if i % 2 == 1 && i < 15 {
            if let [b'-', tail @ ..] = rest {
                rest = tail;
            }
        }
    }
    if braced {
        rest = rest.strip_prefix(b"}").ok_or_else(invalid)?;
    }
    if rest.is_empty() {
        Ok(uuid)
    } else {
        Err(invalid())
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 16] = [
        0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a,
        0x11,
    ];

    #[test]
    fn accepts_every_form_postgresql_accepts() {
        for text in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
        ] {
            assert_eq!(parse_uuid(text), Ok(BYTES), "{text}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1é",
        ] {
            assert_eq!(
                parse_uuid(text),
                Err(format!("invalid input syntax for type uuid: {text:?}")),
                "{text}"
            );
        }
    }
}
