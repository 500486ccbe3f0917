//! Interval values in PostgreSQL's default output style (`IntervalStyle = postgres`), read
//! into their parts: to order and group them as the server does (`'1 day'` equals
//! `'24:00:00'`) and to write them in binary.

const MICROS_PER_DAY: i128 = 86_400_000_000;

/// An interval's three fields, as PostgreSQL stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// Reads `1 year 2 mons -3 days +04:05:06.5`; `None` for any other style.
    pub fn parse(text: &str) -> Option<Interval> {
        let mut interval = Interval {
            months: 0,
            days: 0,
            micros: 0,
        };
        let mut words = text.split(' ').filter(|w| !w.is_empty()).peekable();
        let mut any = false;
        while let Some(word) = words.next() {
            any = true;
            if word.contains(':') {
                interval.micros = interval.micros.checked_add(clock(word)?)?;
                continue;
            }
            let n: i32 = word.parse().ok()?;
            let unit = words.next()?;
            match unit {
                "year" | "years" => {
                    interval.months = interval.months.checked_add(n.checked_mul(12)?)?
                }
                "mon" | "mons" => interval.months = interval.months.checked_add(n)?,
                "day" | "days" => interval.days = interval.days.checked_add(n)?,
                _ => return None,
            }
        }
        any.then_some(interval)
    }

    /// What PostgreSQL compares and hashes: the span with a month as 30 days.
    pub fn span(&self) -> i128 {
        (i128::from(self.months) * 30 + i128::from(self.days)) * MICROS_PER_DAY
            + i128::from(self.micros)
    }

    /// The binary form: microseconds, days, months.
    pub fn to_binary(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.micros.to_be_bytes());
        out.extend_from_slice(&self.days.to_be_bytes());
        out.extend_from_slice(&self.months.to_be_bytes());
        out
    }
}

/// `[+-]H:MM:SS[.ffffff]` in microseconds.
fn clock(word: &str) -> Option<i64> {
    let (negative, rest) = match word.as_bytes().first()? {
        b'-' => (true, &word[1..]),
        b'+' => (false, &word[1..]),
        _ => (false, word),
    };
    let mut parts = rest.splitn(3, ':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    let micros = hours
        .checked_mul(3_600_000_000)?
        .checked_add(minutes * 60_000_000)?
        .checked_add(whole * 1_000_000)?
        .checked_add(fraction)?;
    Some(if negative { -micros } else { micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (i32, i32, i64) {
        let i = Interval::parse(text).unwrap();
        (i.months, i.days, i.micros)
    }

    #[test]
    fn reads_the_postgres_style() {
        assert_eq!(
            parts("1 year 2 mons 3 days 04:05:06.789"),
            (14, 3, 14_706_789_000)
        );
        assert_eq!(
            parts("-1 years -2 mons +3 days -04:05:06"),
            (-14, 3, -14_706_000_000)
        );
        assert_eq!(parts("00:00:00"), (0, 0, 0));
        assert_eq!(parts("1 day"), (0, 1, 0));
        assert_eq!(parts("-00:00:00.5"), (0, 0, -500_000));
        assert_eq!(parts("2562047788:00:54.775807"), (0, 0, i64::MAX));
    }

    #[test]
    fn refuses_other_styles() {
        for text in ["@ 1 day", "P1D", "1-2 3 4:05:06", "", "1 fortnight"] {
            assert_eq!(Interval::parse(text), None, "{text}");
        }
    }

    #[test]
    fn a_day_spans_twenty_four_hours() {
        let day = Interval::parse("1 day").unwrap();
        let hours = Interval::parse("24:00:00").unwrap();
        assert_ne!(day, hours);
        assert_eq!(day.span(), hours.span());
        assert_eq!(
            Interval::parse("1 mon").unwrap().span(),
            Interval::parse("30 days").unwrap().span()
        );
    }

    #[test]
    fn binary_is_micros_days_months() {
        let b = Interval::parse("1 mon 2 days 00:00:01")
            .unwrap()
            .to_binary();
        assert_eq!(b[..8], 1_000_000i64.to_be_bytes());
        assert_eq!(b[8..12], 2i32.to_be_bytes());
        assert_eq!(b[12..], 1i32.to_be_bytes());
    }
}
