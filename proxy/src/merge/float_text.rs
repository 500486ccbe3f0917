//! Floats printed exactly as PostgreSQL 15 prints them (shortest round-trip digits,
//! `extra_float_digits` > 0), so a merged sum or average reads like the server's own.

use std::cmp::Ordering;

use bigdecimal::num_bigint::BigInt;

/// The text of a float8 value.
pub fn float8_text(value: f64) -> String {
    let a = value.abs();
    let scientific = if a.is_finite() && a != 0.0 {
        let bits = a.to_bits();
        let (exponent, fraction) = ((bits >> 52) as i32, bits & ((1 << 52) - 1));
        let binary = match exponent {
            0 => Binary::new(fraction, -1074, false),
            e => Binary::new(fraction | 1 << 52, e - 1075, fraction == 0 && e > 1),
        };
        let digits = |n: usize| format!("{:.*e}", n - 1, a);
        let reads_back = |s: &str| s.parse::<f64>().is_ok_and(|v| v == a);
        shortest(&binary, &format!("{a:e}"), 17, digits, reads_back)
    } else {
        format!("{a:e}")
    };
    format_shortest(value, sign(value.is_sign_negative(), scientific), 15)
}

/// The text of a float4 value.
pub fn float4_text(value: f32) -> String {
    let a = value.abs();
    let scientific = if a.is_finite() && a != 0.0 {
        let bits = a.to_bits();
        let (exponent, fraction) = ((bits >> 23) as i32, bits & ((1 << 23) - 1));
        let binary = match exponent {
            0 => Binary::new(u64::from(fraction), -149, false),
            e => Binary::new(
                u64::from(fraction | 1 << 23),
                e - 150,
                fraction == 0 && e > 1,
            ),
        };
        let digits = |n: usize| format!("{:.*e}", n - 1, a);
        let reads_back = |s: &str| s.parse::<f32>().is_ok_and(|v| v == a);
        shortest(&binary, &format!("{a:e}"), 9, digits, reads_back)
    } else {
        format!("{a:e}")
    };
    format_shortest(value as f64, sign(value.is_sign_negative(), scientific), 6)
}

fn sign(negative: bool, scientific: String) -> String {
    if negative {
        format!("-{scientific}")
    } else {
        scientific
    }
}

/// A positive float as `mantissa * 2^exponent`, and where its rounding interval ends:
/// halfway to each neighbour (the lower one is nearer when the mantissa is a power of
/// two, but for the smallest exponent).
struct Binary {
    mantissa: u64,
    exponent: i32,
    lower_nearer: bool,
}

impl Binary {
    fn new(mantissa: u64, exponent: i32, lower_nearer: bool) -> Binary {
        Binary {
            mantissa,
            exponent,
            lower_nearer,
        }
    }

    /// The interval's ends as `numerator * 2^exponent`, low then high.
    fn bounds(&self) -> [(u128, i32); 2] {
        let m = u128::from(self.mantissa);
        let low = if self.lower_nearer {
            (4 * m - 1, self.exponent - 2)
        } else {
            (2 * m - 1, self.exponent - 1)
        };
        [low, (2 * m + 1, self.exponent - 1)]
    }
}

/// PostgreSQL's (Ryu's) shortest digits: the fewest significant digits of a decimal
/// strictly inside the rounding interval (never on its ends, which Rust's shortest
/// digits may be), the one nearest the value, ties to an even last digit. Given and
/// returned as `d.ddde±x` without sign; `digits(n)` is the value correctly rounded to
/// `n` significant digits, ties to even.
fn shortest(
    binary: &Binary,
    rust_shortest: &str,
    max_digits: usize,
    digits: impl Fn(usize) -> String,
    reads_back: impl Fn(&str) -> bool,
) -> String {
    let Some(fewest) = Decimal::parse(rust_shortest) else {
        return rust_shortest.to_string();
    };
    for n in fewest.digits.len()..=max_digits {
        let Some(nearest) = Decimal::parse(&digits(n)) else {
            break;
        };
        if nearest.inside(binary, &reads_back) {
            return nearest.scientific();
        }
        // The nearest is outside (or on an end): the next one on the value's other
        // side may be inside, the interval being lopsided.
        let step: i128 = match nearest.compare(u128::from(binary.mantissa), binary.exponent) {
            Ordering::Greater => -1,
            _ => 1,
        };
        if let Some(other) = nearest.offset(step) {
            if other.inside(binary, &reads_back) {
                return other.scientific();
            }
        }
    }
    rust_shortest.to_string()
}

/// A positive decimal `digits * 10^scale` (`digits` without leading zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    digits: String,
    scale: i32,
}

impl Decimal {
    /// Reads `d.ddde±x`.
    fn parse(scientific: &str) -> Option<Decimal> {
        let (mantissa, exponent) = scientific.split_once('e')?;
        let exponent: i32 = exponent.parse().ok()?;
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let scale = exponent - (digits.len() as i32 - 1);
        Some(Decimal { digits, scale })
    }

    /// `d.ddde±x` without trailing zeros.
    fn scientific(&self) -> String {
        let trimmed = self.digits.trim_end_matches('0');
        let exponent = self.scale + self.digits.len() as i32 - 1;
        if trimmed.is_empty() {
            return "0e0".to_string();
        }
        match trimmed.split_at(1) {
            (first, "") => format!("{first}e{exponent}"),
            (first, rest) => format!("{first}.{rest}e{exponent}"),
        }
    }

    /// This decimal plus `step` units of its last digit.
    fn offset(&self, step: i128) -> Option<Decimal> {
        let value = self.digits.parse::<i128>().ok()? + step;
        (value > 0).then(|| Decimal {
            digits: value.to_string(),
            scale: self.scale,
        })
    }

    /// Whether it lies strictly inside the interval of `binary`: it reads back as the
    /// value and is neither end.
    fn inside(&self, binary: &Binary, reads_back: &impl Fn(&str) -> bool) -> bool {
        if !reads_back(&self.scientific()) {
            return false;
        }
        !binary.bounds().iter().any(|&(numerator, exponent)| {
            self.may_equal(exponent) && self.compare(numerator, exponent) == Ordering::Equal
        })
    }

    /// Whether it can be an odd multiple of `2^exponent` at all: a decimal with digits
    /// after the point is one only if it is a multiple of that many fives, an integer
    /// only if the power of two is not a fraction.
    fn may_equal(&self, exponent: i32) -> bool {
        if self.scale >= 0 {
            return exponent >= 0;
        }
        let fives = (-self.scale) as u32;
        match (self.digits.parse::<u128>(), 5u128.checked_pow(fives)) {
            (Ok(digits), Some(power)) => digits % power == 0,
            // More fives than fit in 128 bits: more than the digits hold.
            (Ok(_), None) => false,
            (Err(_), _) => true,
        }
    }

    /// Exactly compares it with `numerator * 2^exponent`.
    fn compare(&self, numerator: u128, exponent: i32) -> Ordering {
        let Ok(mut left) = self.digits.parse::<BigInt>() else {
            return Ordering::Equal;
        };
        let mut right = BigInt::from(numerator);
        let ten = BigInt::from(10u32);
        if self.scale >= 0 {
            left *= ten.pow(self.scale as u32);
        } else {
            right *= ten.pow((-self.scale) as u32);
        }
        if exponent >= 0 {
            right <<= exponent as usize;
        } else {
            left <<= (-exponent) as usize;
        }
        left.cmp(&right)
    }
}

/// Lays out the shortest digits (`d.ddde±x` from Rust) the way PostgreSQL's ryu output
/// does: fixed notation for decimal exponents in -4..`fixed_below`, else `d.ddde±xx`.
fn format_shortest(value: f64, scientific: String, fixed_below: i32) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if value == 0.0 {
        return format!("{sign}0");
    }
    if (-4..fixed_below).contains(&exponent) {
        let point = exponent + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{digits}{}", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        return format!("{sign}{body}");
    }
    let fraction = if digits.len() > 1 {
        format!(".{}", &digits[1..])
    } else {
        String::new()
    };
    let exp_sign = if exponent < 0 { '-' } else { '+' };
    format!(
        "{sign}{}{fraction}e{exp_sign}{:02}",
        &digits[..1],
        exponent.abs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_postgres_output() {
        assert_eq!(float8_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float8_text(1e20), "1e+20");
        assert_eq!(float8_text(1.5e-5), "1.5e-05");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(123456789012345.0), "123456789012345");
        assert_eq!(float8_text(1234567890123456.0), "1.234567890123456e+15");
        assert_eq!(float8_text(-2.5), "-2.5");
        assert_eq!(float8_text(-0.0), "-0");
        assert_eq!(float8_text(f64::NAN), "NaN");
        assert_eq!(float4_text(1234567.0), "1.234567e+06");
        assert_eq!(float4_text(123456.0), "123456");
        assert_eq!(float4_text(0.1), "0.1");
    }

    #[test]
    fn ties_between_shortest_digits_go_to_even() {
        // -855.12701416015625 exactly (a real widened): ...562 and ...563 are as near.
        assert_eq!(float8_text(-855.127f32 as f64), "-855.1270141601562");
        assert_eq!(float8_text(819.554f32 as f64), "819.5540161132812");
        // 403820.625 as a real: 403820.62 and 403820.63 read back as it.
        assert_eq!(float4_text(-403_820.62), "-403820.62");
        assert_eq!(float4_text(33_578.812), "33578.812");
        assert_eq!(float8_text(0.5), "0.5");
        assert_eq!(float8_text(1.0 / 3.0), "0.3333333333333333");
    }

    #[test]
    fn digits_on_the_end_of_the_rounding_interval_are_not_taken() {
        // 2111512064 as a real: 2.111512e+09 is exactly halfway to the next real below,
        // so PostgreSQL prints one digit more.
        assert_eq!(float4_text(2_111_512_064.0), "2.1115121e+09");
        assert_eq!(float4_text(-884_634_368.0), "-8.8463437e+08");
        assert_eq!(float4_text(16_777_216.0), "1.6777216e+07");
        assert_eq!(
            float8_text(9_007_199_254_740_992.0),
            "9.007199254740992e+15"
        );
        assert_eq!(float8_text(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(float8_text(5e-324), "5e-324");
        assert_eq!(float4_text(f32::MIN_POSITIVE), "1.1754944e-38");
    }
}
