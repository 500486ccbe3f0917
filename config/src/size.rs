//! Byte sizes written like PostgreSQL memory settings: `"512B"`, `"64kB"`,
//! `"16MB"`, `"1GB"`, `"1TB"`, or a bare integer meaning bytes.
//!
//! Units are 1024-based and case-sensitive, exactly as in PostgreSQL, so a
//! value copied from `postgresql.conf` means the same here.

use serde::Deserializer;

const UNITS: &str = "B, kB, MB, GB or TB";

/// Parses a whole number optionally followed by a unit; blanks around and
/// between them are allowed.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a whole number of bytes, optionally with a unit ({UNITS}), e.g. \"64MB\""
        ));
    }
    let bytes_per_unit: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        other => {
            return Err(format!(
                "invalid unit {other:?} in size {text:?}: expected {UNITS} (case-sensitive, as in PostgreSQL)"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(bytes_per_unit))
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// `deserialize_with` adapter for [`parse_size`]; also takes a TOML integer.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    crate::de::from_str_or_integer(
        deserializer,
        "a size such as \"64MB\" or a number of bytes",
        parse_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64kB"), Ok(64 * 1024));
        assert_eq!(parse_size("16MB"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_size("1GB"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
    }

    #[test]
    fn bare_number_is_bytes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 8 kB "), Ok(8192));
    }

    #[test]
    fn units_are_case_sensitive() {
        assert_eq!(
            parse_size("64mb"),
            Err("invalid unit \"mb\" in size \"64mb\": expected B, kB, MB, GB or TB (case-sensitive, as in PostgreSQL)".to_string())
        );
        assert!(parse_size("64KB").is_err());
        assert!(parse_size("16MiB").is_err());
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5MB").is_err());
        assert_eq!(
            parse_size("20000000TB"),
            Err("size \"20000000TB\" is too large".to_string())
        );
    }
}
