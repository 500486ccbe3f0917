//! Floats printed exactly as PostgreSQL 15 prints them (shortest round-trip digits,
//! `extra_float_digits` > 0), so a merged sum or average reads like the server's own.

/// The text of a float8 value.
pub fn float8_text(value: f64) -> String {
    format_shortest(value, format!("{value:e}"), 15)
}

/// The text of a float4 value.
pub fn float4_text(value: f32) -> String {
    format_shortest(value as f64, format!("{value:e}"), 6)
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
}
