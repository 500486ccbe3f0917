//! PostgreSQL's numeric division as `avg` uses it: the result scale that
//! `select_div_scale` picks, rounded half away from zero.

use bigdecimal::{BigDecimal, RoundingMode, Zero};

/// Significant digits a quotient gets at least (NUMERIC_MIN_SIG_DIGITS).
const MIN_SIG_DIGITS: i64 = 16;
/// Decimal digits per base-10000 digit of PostgreSQL's numeric storage.
const DEC_DIGITS: i64 = 4;
const MAX_DISPLAY_SCALE: i64 = 1000;

/// `a / b` as PostgreSQL's `numeric_div` computes and prints it; `None` for b = 0.
pub fn numeric_div(a: &BigDecimal, b: &BigDecimal) -> Option<BigDecimal> {
    if b.is_zero() {
        return None;
    }
    let scale = division_scale(a, b);
    let precision = (scale + a.digits() as i64 + b.digits() as i64 + 8).max(50) as u64;
    let quotient =
        a.with_precision_round(std::num::NonZeroU64::new(precision)?, RoundingMode::HalfUp) / b;
    Some(quotient.with_scale_round(scale, RoundingMode::HalfUp))
}

/// The display scale (digits after the point) of a value as PostgreSQL keeps it.
pub fn display_scale(v: &BigDecimal) -> i64 {
    v.fractional_digit_count().max(0)
}

/// `select_div_scale`: enough digits for 16 significant ones in the quotient, and no
/// fewer than either operand shows.
fn division_scale(a: &BigDecimal, b: &BigDecimal) -> i64 {
    let (weight1, first1) = leading_base_digit(a);
    let (weight2, first2) = leading_base_digit(b);
    let mut qweight = weight1 - weight2;
    if first1 <= first2 {
        qweight -= 1;
    }
    let scale = MIN_SIG_DIGITS - qweight * DEC_DIGITS;
    scale
        .max(display_scale(a))
        .max(display_scale(b))
        .clamp(0, MAX_DISPLAY_SCALE)
}

/// The weight (power of 10000) and value of the first non-zero base-10000 digit of
/// `v`, as PostgreSQL's numeric stores it; (0, 0) for zero.
fn leading_base_digit(v: &BigDecimal) -> (i64, i64) {
    if v.is_zero() {
        return (0, 0);
    }
    let abs = v.abs();
    // Decimal exponent of the leading digit: digits before the point - 1.
    let (_, scale) = abs.as_bigint_and_exponent();
    let exponent = abs.digits() as i64 - 1 - scale;
    let weight = exponent.div_euclid(DEC_DIGITS);
    // The base-10000 digit: floor(abs / 10000^weight) mod 10000.
    let shifted = abs * BigDecimal::new(1.into(), weight * DEC_DIGITS);
    let digit = shifted
        .with_scale_round(0, RoundingMode::Down)
        .to_string()
        .parse::<i64>()
        .unwrap_or(0)
        % 10_000;
    (weight, digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn div(a: &str, b: &str) -> String {
        numeric_div(
            &BigDecimal::from_str(a).unwrap(),
            &BigDecimal::from_str(b).unwrap(),
        )
        .unwrap()
        .to_plain_string()
    }

    #[test]
    fn matches_postgres_avg_output() {
        // SELECT avg(x) FROM (VALUES (1),(2)) v(x) → 1.5000000000000000
        assert_eq!(div("3", "2"), "1.5000000000000000");
        assert_eq!(div("5", "4"), "1.2500000000000000");
        // avg of 1, 2, 2 → 1.6666666666666667
        assert_eq!(div("5", "3"), "1.6666666666666667");
        // avg(100000) over 3 rows: sum 300000 → 100000.000000000000
        assert_eq!(div("300000", "3"), "100000.000000000000");
        // numeric inputs keep their scale: avg(1.25, 2.50) → 1.8750000000000000
        assert_eq!(div("3.75", "2"), "1.8750000000000000");
        assert_eq!(div("-7", "2"), "-3.5000000000000000");
        assert_eq!(div("0", "5"), "0.00000000000000000000");
        assert_eq!(div("123456789", "1000"), "123456.789000000000");
    }

    #[test]
    fn dividing_by_zero_is_none() {
        assert!(numeric_div(&BigDecimal::from(1), &BigDecimal::from(0)).is_none());
    }
}
