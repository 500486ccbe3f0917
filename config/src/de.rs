//! Serde glue for values written as strings and parsed by this crate.
//!
//! Going through a visitor (instead of deserializing a `String` first) makes a
//! wrong TOML type name what was expected, e.g.
//! "invalid type: integer `5`, expected a duration with a unit, such as \"5s\"".

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Deserializes a TOML string with `parse`.
pub(crate) fn from_str<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_str(Parsed {
        expecting,
        parse,
        integers: false,
    })
}

/// Like [`from_str`], but a TOML integer is accepted too and parsed from its
/// decimal form (sizes: a bare number is bytes).
pub(crate) fn from_str_or_integer<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_any(Parsed {
        expecting,
        parse,
        integers: true,
    })
}

struct Parsed<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
    integers: bool,
}

impl<T> Visitor<'_> for Parsed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        if self.integers {
            self.visit_str(&value.to_string())
        } else {
            Err(E::invalid_type(de::Unexpected::Signed(value), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        if self.integers {
            self.visit_str(&value.to_string())
        } else {
            Err(E::invalid_type(de::Unexpected::Unsigned(value), &self))
        }
    }
}
