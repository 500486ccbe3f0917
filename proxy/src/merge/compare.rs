//! Ordering of text-format values the way PostgreSQL orders them, per column type.

use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::BigDecimal;

use super::datetime::{bad, sort_key};
use super::error::MergeError;
use super::interval::Interval;
use super::value_type::ValueType;

/// A numeric value: NaN sorts after everything, as in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NumericValue {
    NegInfinity,
    Finite(BigDecimal),
    Infinity,
    NaN,
}

impl NumericValue {
    pub fn parse(text: &str) -> Result<NumericValue, MergeError> {
        Ok(match text {
            "NaN" => NumericValue::NaN,
            "Infinity" => NumericValue::Infinity,
            "-Infinity" => NumericValue::NegInfinity,
            _ => {
                NumericValue::Finite(BigDecimal::from_str(text).map_err(|_| bad("numeric", text))?)
            }
        })
    }
}

/// Reads a float4/float8 text value.
pub fn parse_float(text: &str) -> Result<f64, MergeError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| bad("double precision", text)),
    }
}

/// PostgreSQL's float order: NaN equals itself and sorts after every other value.
pub fn float_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Compares two non-NULL text values of type `ty`.
pub fn compare(ty: ValueType, a: &[u8], b: &[u8]) -> Result<Ordering, MergeError> {
    fn utf8(ty: ValueType, v: &[u8]) -> Result<&str, MergeError> {
        std::str::from_utf8(v).map_err(|_| bad(ty.name(), "(not UTF-8)"))
    }
    Ok(match ty {
        ValueType::Text | ValueType::Uuid => a.cmp(b),
        ValueType::Bpchar => trim_blanks(a).cmp(trim_blanks(b)),
        ValueType::Bool => a.cmp(b), // "f" < "t"
        ValueType::Int { .. } => {
            let parse = |v: &[u8]| {
                let t = utf8(ty, v)?;
                t.parse::<i64>().map_err(|_| bad(ty.name(), t))
            };
            parse(a)?.cmp(&parse(b)?)
        }
        ValueType::Float { .. } => {
            float_order(parse_float(utf8(ty, a)?)?, parse_float(utf8(ty, b)?)?)
        }
        ValueType::Numeric => {
            NumericValue::parse(utf8(ty, a)?)?.cmp(&NumericValue::parse(utf8(ty, b)?)?)
        }
        ValueType::Date | ValueType::Time | ValueType::Timestamp | ValueType::TimestampTz => {
            let with_date = ty != ValueType::Time;
            let with_zone = ty == ValueType::TimestampTz;
            let key = |v: &[u8]| {
                let t = utf8(ty, v)?;
                sort_key(t, with_date, with_zone).ok_or_else(|| {
                    MergeError::Unsupported(format!(
                        "cannot order {} values across shards unless DateStyle is ISO \
                         (got {t:?})",
                        ty.name()
                    ))
                })
            };
            key(a)?.cmp(&key(b)?)
        }
        ValueType::Interval => interval(a)?.span().cmp(&interval(b)?.span()),
        ValueType::Array { oid } => super::array::compare(oid, a, b)?,
        ValueType::Other { oid } => {
            return Err(MergeError::Unsupported(format!(
                "cannot compare values of type OID {oid} across shards (ORDER BY, GROUP BY, \
                 DISTINCT, min/max need a comparable type); cast the column to text, a number, \
                 or a date/time type"
            )))
        }
    })
}

/// An interval's text read, or why it cannot be.
pub fn interval(v: &[u8]) -> Result<Interval, MergeError> {
    let t = std::str::from_utf8(v).map_err(|_| bad("interval", "(not UTF-8)"))?;
    Interval::parse(t).ok_or_else(|| {
        MergeError::Unsupported(format!(
            "cannot compare interval values across shards unless IntervalStyle is postgres \
             (got {t:?})"
        ))
    })
}

/// Compares nullable values, NULLs first or last.
pub fn compare_nullable(
    ty: ValueType,
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    nulls_first: bool,
) -> Result<Ordering, MergeError> {
    Ok(match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) if nulls_first => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) if nulls_first => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => compare(ty, a, b)?,
    })
}

fn trim_blanks(v: &[u8]) -> &[u8] {
    let end = v.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(oid: u32, a: &str, b: &str) -> Ordering {
        compare(ValueType::from_oid(oid), a.as_bytes(), b.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_order_by_value_not_text() {
        assert_eq!(cmp(23, "9", "10"), Ordering::Less);
        assert_eq!(cmp(20, "-5", "-40"), Ordering::Greater);
        assert_eq!(cmp(1700, "10.50", "10.5"), Ordering::Equal);
        assert_eq!(cmp(1700, "NaN", "Infinity"), Ordering::Greater);
        assert_eq!(cmp(701, "NaN", "Infinity"), Ordering::Greater);
        assert_eq!(cmp(701, "1e-5", "0.001"), Ordering::Less);
    }

    #[test]
    fn char_ignores_trailing_blanks_and_text_is_bytewise() {
        assert_eq!(cmp(1042, "ab  ", "ab"), Ordering::Equal);
        assert_eq!(cmp(25, "B", "a"), Ordering::Less);
        assert_eq!(cmp(16, "f", "t"), Ordering::Less);
    }

    #[test]
    fn nulls_go_where_asked() {
        let t = ValueType::Text;
        assert_eq!(
            compare_nullable(t, None, Some(b"a"), false).unwrap(),
            Ordering::Greater
        );
        assert_eq!(
            compare_nullable(t, None, Some(b"a"), true).unwrap(),
            Ordering::Less
        );
    }

    #[test]
    fn unknown_types_and_bad_values_are_errors() {
        let other = ValueType::from_oid(600); // point
        assert!(matches!(
            compare(other, b"(1,2)", b"(3,4)"),
            Err(MergeError::Unsupported(_))
        ));
        assert!(matches!(
            compare(ValueType::from_oid(23), b"x", b"1"),
            Err(MergeError::BadValue { .. })
        ));
    }
}
