//! Dates and times in PostgreSQL's ISO output style, read into numbers that order the
//! way the server orders them (text order breaks on BC dates, infinities and time zone
//! offsets).

use super::error::MergeError;

const MICROS_PER_DAY: i128 = 86_400_000_000;

/// A sortable instant for a date, time, timestamp or timestamptz text: microseconds
/// from an epoch, with `infinity` and `-infinity` beyond every real value.
pub fn sort_key(text: &str, with_date: bool, with_zone: bool) -> Option<i128> {
    match text {
        "infinity" => return Some(i128::MAX),
        "-infinity" => return Some(i128::MIN),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (date_part, time_part) = if with_date {
        match text.split_once(' ') {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        }
    } else {
        ("", Some(text))
    };
    let mut micros: i128 = 0;
    if with_date {
        let mut fields = date_part.splitn(3, '-');
        let year: i64 = fields.next()?.parse().ok()?;
        let month: u32 = fields.next()?.parse().ok()?;
        let day: u32 = fields.next()?.parse().ok()?;
        let year = if bc { 1 - year } else { year };
        micros = days_from_civil(year, month, day) as i128 * MICROS_PER_DAY;
    }
    if let Some(time) = time_part {
        // The zone starts at the first sign after the seconds.
        let (clock, zone) = match time.find(['+', '-']) {
            Some(p) if with_zone => (&time[..p], Some(&time[p..])),
            Some(_) => return None,
            None => (time, None),
        };
        micros += clock_micros(clock)?;
        if let Some(zone) = zone {
            let sign: i128 = if zone.starts_with('-') { -1 } else { 1 };
            let mut parts = zone[1..].split(':');
            let hours: i128 = parts.next()?.parse().ok()?;
            let minutes: i128 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
            let seconds: i128 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
            micros -= sign * ((hours * 60 + minutes) * 60 + seconds) * 1_000_000;
        } else if with_zone {
            return None;
        }
    }
    Some(micros)
}

/// Microseconds since midnight of `HH:MM:SS[.ffffff]`.
fn clock_micros(clock: &str) -> Option<i128> {
    let mut parts = clock.splitn(3, ':');
    let hours: i128 = parts.next()?.parse().ok()?;
    let minutes: i128 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: i128 = whole.parse().ok()?;
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: i128 = format!("{fraction:0<6}").parse().ok()?;
    Some(((hours * 60 + minutes) * 60 + whole) * 1_000_000 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 = 1 BC).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The error for a value that does not read as `type_name`.
pub fn bad(type_name: &'static str, text: &str) -> MergeError {
    MergeError::BadValue {
        type_name,
        value: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_order_across_eras_and_infinities() {
        let key = |t| sort_key(t, true, false).unwrap();
        assert!(key("0044-03-15 BC") < key("0001-01-01"));
        assert!(key("2024-02-29") < key("2024-03-01"));
        assert!(key("infinity") > key("9999-12-31"));
        assert!(key("-infinity") < key("4713-01-01 BC"));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
    }

    #[test]
    fn timestamps_with_zones_order_by_instant() {
        let key = |t| sort_key(t, true, true).unwrap();
        assert!(key("2026-03-29 03:30:00+02") < key("2026-03-29 01:45:00+00"));
        assert_eq!(
            key("2026-01-01 00:00:00+05:30"),
            key("2025-12-31 18:30:00+00")
        );
        assert!(key("2026-01-01 00:00:00.5+00") > key("2026-01-01 00:00:00.49+00"));
        assert!(sort_key("2026-01-01 00:00:00", true, true).is_none());
    }

    #[test]
    fn times_order_with_fractions() {
        let key = |t| sort_key(t, false, false).unwrap();
        assert!(key("09:00:00") < key("10:00:00.000001"));
        assert!(sort_key("garbage", false, false).is_none());
    }
}
