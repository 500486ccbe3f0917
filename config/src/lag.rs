//! How far behind the primary a replica may be and still serve reads: either WAL
//! bytes (`"16MB"`) or replay delay (`"10s"`).
//!
//! Bytes are exact and cheap to measure but mean different things under light and
//! heavy write loads; time is what applications care about but needs the primary to
//! keep writing to be measured. Both are offered, and the unit tells them apart.

use crate::duration::parse_duration;
use crate::size::parse_size;
use serde::Deserializer;
use std::fmt;
use std::time::Duration;

/// The most a replica may lag behind its primary and still serve reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagLimit {
    /// WAL not yet replayed, in bytes (`"16MB"`, or a bare number of bytes).
    Bytes(u64),
    /// Time since the last replayed transaction committed on the primary (`"10s"`).
    Time(Duration),
}

impl Default for LagLimit {
    fn default() -> Self {
        LagLimit::Bytes(16 << 20)
    }
}

/// Displays as written in the file, e.g. `16777216B` or `10s`.
impl fmt::Display for LagLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LagLimit::Bytes(bytes) => write!(f, "{bytes}B"),
            LagLimit::Time(time) => write!(f, "{}ms", time.as_millis()),
        }
    }
}

const DURATION_UNITS: &[&str] = &["ms", "s", "m", "min", "h", "d"];

/// Parses a size (`B`, `kB`, `MB`, `GB`, `TB`, or none for bytes) or a duration
/// (`ms`, `s`, `m`, `h`, `d`). The unit sets are disjoint as they are case-sensitive:
/// `"1m"` is a minute, `"1MB"` a mebibyte.
pub fn parse_lag(text: &str) -> Result<LagLimit, String> {
    let unit = text.trim().trim_start_matches(|c: char| c.is_ascii_digit());
    if DURATION_UNITS.contains(&unit.trim_start()) {
        return parse_duration(text).map(LagLimit::Time);
    }
    parse_size(text).map(LagLimit::Bytes).map_err(|_| {
        format!("invalid replica lag {text:?}: expected a size such as \"16MB\" (B, kB, MB, GB or TB) or a duration such as \"10s\" (ms, s, m, h or d)")
    })
}

/// `deserialize_with` adapter for [`parse_lag`]; a TOML integer is bytes.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<LagLimit, D::Error> {
    crate::de::from_str_or_integer(
        deserializer,
        "a size such as \"16MB\" or a duration such as \"10s\"",
        parse_lag,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes() {
        assert_eq!(parse_lag("16MB"), Ok(LagLimit::Bytes(16 << 20)));
        assert_eq!(parse_lag("512 kB"), Ok(LagLimit::Bytes(512 << 10)));
        assert_eq!(parse_lag("4096"), Ok(LagLimit::Bytes(4096)));
    }

    #[test]
    fn durations_are_time() {
        assert_eq!(
            parse_lag("10s"),
            Ok(LagLimit::Time(Duration::from_secs(10)))
        );
        assert_eq!(
            parse_lag("500ms"),
            Ok(LagLimit::Time(Duration::from_millis(500)))
        );
        assert_eq!(parse_lag("1m"), Ok(LagLimit::Time(Duration::from_secs(60))));
        assert_eq!(
            parse_lag(" 2 min"),
            Ok(LagLimit::Time(Duration::from_secs(120)))
        );
    }

    #[test]
    fn rejects_other_units_and_garbage() {
        for text in ["16mb", "10 seconds", "", "MB", "-1s", "1.5s"] {
            assert!(parse_lag(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            parse_lag("16mb"),
            Err("invalid replica lag \"16mb\": expected a size such as \"16MB\" (B, kB, MB, GB or TB) or a duration such as \"10s\" (ms, s, m, h or d)".to_string())
        );
        assert_eq!(
            parse_lag("99999999999999999999s"),
            Err("duration \"99999999999999999999s\" is too large".to_string())
        );
    }

    #[test]
    fn display() {
        assert_eq!(LagLimit::default().to_string(), "16777216B");
        assert_eq!(
            LagLimit::Time(Duration::from_secs(10)).to_string(),
            "10000ms"
        );
    }
}
