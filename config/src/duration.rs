//! Durations written like PostgreSQL settings: `"500ms"`, `"5s"`, `"10m"`, `"1h"`, `"1d"`.
//!
//! A unit is required: PostgreSQL's implied unit differs from setting to
//! setting, so a bare number is refused rather than guessed.

use serde::Deserializer;
use std::time::Duration;

const UNITS: &str = "ms, s, m, h or d";

/// Parses a whole number followed by a unit (`ms`, `s`, `m` or `min`, `h`, `d`);
/// blanks around and between them are allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: expected a whole number and a unit ({UNITS}), e.g. \"5s\""
        ));
    }
    let millis_per_unit: u64 = match unit.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("duration {text:?} needs a unit: {UNITS}")),
        other => {
            return Err(format!(
                "invalid unit {other:?} in duration {text:?}: expected {UNITS}"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// `deserialize_with` adapter for [`parse_duration`].
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    crate::de::from_str(
        deserializer,
        "a duration with a unit, such as \"5s\"",
        parse_duration,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3min"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn allows_blanks() {
        assert_eq!(parse_duration(" 10 s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn requires_a_unit() {
        assert_eq!(
            parse_duration("5"),
            Err("duration \"5\" needs a unit: ms, s, m, h or d".to_string())
        );
    }

    #[test]
    fn rejects_unknown_units_and_garbage() {
        assert_eq!(
            parse_duration("5sec"),
            Err("invalid unit \"sec\" in duration \"5sec\": expected ms, s, m, h or d".to_string())
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("5S").is_err());
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            parse_duration("18446744073709551615d"),
            Err("duration \"18446744073709551615d\" is too large".to_string())
        );
        assert!(parse_duration("99999999999999999999999ms").is_err());
    }
}
