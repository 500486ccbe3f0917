//! Shard keys sent as Bind parameters of the extended query protocol, in text or
//! binary format.

use super::{KeyType, KeyValue, ShardingError};

/// The format code a Bind message gives a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamFormat {
    /// Format 0: the value as the type's input function reads it.
    Text,
    /// Format 1: the type's binary send format.
    Binary,
}

impl KeyValue {
    /// Reads a Bind parameter as a key of `key_type`; `None` is a NULL parameter
    /// (length -1).
    ///
    /// Text is taken as UTF-8 (`client_encoding` UTF8). A binary integer is
    /// big-endian and 2, 4 or 8 bytes wide: the width of the parameter's own type,
    /// which may differ from the column's (`WHERE id = $1` with an int4 parameter and
    /// an int8 column); its value is used as sent. A binary text is its UTF-8 bytes,
    /// a binary uuid its 16 bytes.
    pub fn from_parameter(
        key_type: KeyType,
        format: ParamFormat,
        value: Option<&[u8]>,
    ) -> Result<KeyValue, ShardingError> {
        let Some(bytes) = value else {
            return Ok(KeyValue::Null);
        };
        let invalid = || ShardingError::InvalidBinary { key_type };
        match format {
            ParamFormat::Text => {
                let text = std::str::from_utf8(bytes).map_err(|_| invalid())?;
                KeyValue::from_text(key_type, text)
            }
            ParamFormat::Binary => match key_type {
                KeyType::Int2 | KeyType::Int4 | KeyType::Int8 => match *bytes {
                    [a, b] => Ok(KeyValue::Int(i16::from_be_bytes([a, b]).into())),
                    [a, b, c, d] => Ok(KeyValue::Int(i32::from_be_bytes([a, b, c, d]).into())),
                    [a, b, c, d, e, f, g, h] => {
                        Ok(KeyValue::Int(i64::from_be_bytes([a, b, c, d, e, f, g, h])))
                    }
                    _ => Err(invalid()),
                },
                KeyType::Text => std::str::from_utf8(bytes)
                    .map(|text| KeyValue::Text(text.to_owned()))
                    .map_err(|_| invalid()),
                KeyType::Uuid => bytes.try_into().map(KeyValue::Uuid).map_err(|_| invalid()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(key_type: KeyType, bytes: &[u8]) -> Result<KeyValue, ShardingError> {
        KeyValue::from_parameter(key_type, ParamFormat::Binary, Some(bytes))
    }

    #[test]
    fn null_parameters_are_null_keys() {
        for format in [ParamFormat::Text, ParamFormat::Binary] {
            assert_eq!(
                KeyValue::from_parameter(KeyType::Int8, format, None),
                Ok(KeyValue::Null)
            );
        }
    }

    #[test]
    fn text_parameters_read_like_literals() {
        let text = |key_type, bytes: &[u8]| {
            KeyValue::from_parameter(key_type, ParamFormat::Text, Some(bytes))
        };
        assert_eq!(text(KeyType::Int8, b"-5"), Ok(KeyValue::Int(-5)));
        assert_eq!(
            text(KeyType::Text, "Zürich".as_bytes()),
            Ok(KeyValue::Text("Zürich".into()))
        );
        assert_eq!(
            text(KeyType::Int4, b"x"),
            Err(ShardingError::InvalidText {
                key_type: KeyType::Int4,
                text: "x".into()
            })
        );
        assert_eq!(
            text(KeyType::Text, b"\xff"),
            Err(ShardingError::InvalidBinary {
                key_type: KeyType::Text
            })
        );
    }

    #[test]
    fn binary_integers_of_every_width_are_big_endian_and_signed() {
        assert_eq!(binary(KeyType::Int8, &[0xff, 0xfe]), Ok(KeyValue::Int(-2)));
        assert_eq!(binary(KeyType::Int2, &[0, 0, 1, 0]), Ok(KeyValue::Int(256)));
        assert_eq!(
            binary(KeyType::Int4, &i64::MIN.to_be_bytes()),
            Ok(KeyValue::Int(i64::MIN))
        );
        for bytes in [&[][..], &[1], &[1, 2, 3], &[0; 16]] {
            assert_eq!(
                binary(KeyType::Int8, bytes),
                Err(ShardingError::InvalidBinary {
                    key_type: KeyType::Int8
                })
            );
        }
    }

    #[test]
    fn binary_text_and_uuid() {
        assert_eq!(
            binary(KeyType::Text, b""),
            Ok(KeyValue::Text(String::new()))
        );
        assert_eq!(binary(KeyType::Uuid, &[7; 16]), Ok(KeyValue::Uuid([7; 16])));
        assert_eq!(
            binary(KeyType::Uuid, &[7; 15]),
            Err(ShardingError::InvalidBinary {
                key_type: KeyType::Uuid
            })
        );
    }
}
