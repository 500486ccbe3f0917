//! Casts and COALESCE of merged values (`count(*)::int`, `COALESCE(sum(x), 0)`),
//! converting their text exactly as PostgreSQL would: the same result type, the same
//! rounding, the same errors for values out of range.
//!
//! The type a value has (from the shards' RowDescription) decides what a conversion
//! does, as it decides on one server; [`super::compute`] puts them together.

use std::str::FromStr;

use bigdecimal::{BigDecimal, RoundingMode, ToPrimitive, Zero};
use pgshard_router::plan::{CastTarget, Constant};

use super::datetime::bad;
use super::error::MergeError;
use super::float_text::{float4_text, float8_text};

/// Type OIDs of the types the conversions know.
pub(super) mod oid {
    pub const BOOL: u32 = 16;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
}

/// The 4 bytes PostgreSQL adds to a length or precision in a type modifier.
const VARHDRSZ: i32 = 4;

/// A column type with its modifier, as a RowDescription carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlType {
    pub oid: u32,
    /// -1 when none (`numeric`, `varchar`); else as PostgreSQL encodes it.
    pub typmod: i32,
}

impl SqlType {
    pub(super) const fn plain(oid: u32) -> SqlType {
        SqlType { oid, typmod: -1 }
    }

    /// The type a cast produces.
    pub fn of_target(target: CastTarget) -> SqlType {
        match target {
            CastTarget::Int2 => SqlType::plain(oid::INT2),
            CastTarget::Int4 => SqlType::plain(oid::INT4),
            CastTarget::Int8 => SqlType::plain(oid::INT8),
            CastTarget::Numeric { typmod } => SqlType {
                oid: oid::NUMERIC,
                typmod: typmod.map_or(-1, |t| ((t.precision << 16) | (t.scale & 0x7ff)) + VARHDRSZ),
            },
            CastTarget::Float4 => SqlType::plain(oid::FLOAT4),
            CastTarget::Float8 => SqlType::plain(oid::FLOAT8),
            CastTarget::Text => SqlType::plain(oid::TEXT),
            CastTarget::Varchar { length } => SqlType {
                oid: oid::VARCHAR,
                typmod: length.map_or(-1, |n| n as i32 + VARHDRSZ),
            },
        }
    }

    /// The RowDescription's type size: the fixed length, or -1.
    pub fn size(self) -> i16 {
        match self.oid {
            oid::BOOL => 1,
            oid::INT2 => 2,
            oid::INT4 | oid::FLOAT4 => 4,
            oid::INT8 | oid::FLOAT8 => 8,
            oid::NAME => 64,
            _ => -1,
        }
    }

    /// The name PostgreSQL's messages use.
    pub(super) fn name(self) -> String {
        match self.oid {
            oid::BOOL => "boolean",
            oid::NAME => "name",
            oid::INT8 => "bigint",
            oid::INT2 => "smallint",
            oid::INT4 => "integer",
            oid::TEXT => "text",
            oid::FLOAT4 => "real",
            oid::FLOAT8 => "double precision",
            oid::UNKNOWN => "unknown",
            oid::BPCHAR => "character",
            oid::VARCHAR => "character varying",
            oid::DATE => "date",
            oid::TIME => "time without time zone",
            oid::TIMESTAMP => "timestamp without time zone",
            oid::TIMESTAMPTZ => "timestamp with time zone",
            oid::INTERVAL => "interval",
            oid::TIMETZ => "time with time zone",
            oid::NUMERIC => "numeric",
            oid::UUID => "uuid",
            other => return format!("the type with OID {other}"),
        }
        .to_string()
    }

    /// numeric's precision and scale, if the modifier gives them.
    fn numeric_typmod(self) -> Option<(i32, i32)> {
        if self.oid != oid::NUMERIC || self.typmod < VARHDRSZ {
            return None;
        }
        let t = self.typmod - VARHDRSZ;
        Some(((t >> 16) & 0xffff, ((t & 0x7ff) ^ 1024) - 1024))
    }

    /// varchar's length limit, if the modifier gives one.
    fn varchar_length(self) -> Option<usize> {
        (self.oid == oid::VARCHAR && self.typmod >= VARHDRSZ)
            .then(|| (self.typmod - VARHDRSZ) as usize)
    }
}

/// How the steps see a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Numeric,
    Float,
    /// text, varchar, name: their text is their value.
    Text,
    /// char(n): trailing blanks do not count.
    Bpchar,
    Bool,
    /// Types whose cast to text is their output text (dates, times, intervals, uuid),
    /// and that have no cast to a number.
    Printed,
    Other,
}

impl Kind {
    fn of(ty: SqlType) -> Kind {
        match ty.oid {
            oid::INT2 | oid::INT4 | oid::INT8 => Kind::Int,
            oid::NUMERIC => Kind::Numeric,
            oid::FLOAT4 | oid::FLOAT8 => Kind::Float,
            oid::TEXT | oid::VARCHAR | oid::NAME => Kind::Text,
            oid::BPCHAR => Kind::Bpchar,
            oid::BOOL => Kind::Bool,
            oid::DATE
            | oid::TIME
            | oid::TIMESTAMP
            | oid::TIMESTAMPTZ
            | oid::INTERVAL
            | oid::TIMETZ
            | oid::UUID => Kind::Printed,
            _ => Kind::Other,
        }
    }
}

/// The implicit-cast order of PostgreSQL's numeric types: each converts implicitly to
/// every later one, never to an earlier one.
pub(super) fn numeric_rank(ty: SqlType) -> Option<u8> {
    Some(match ty.oid {
        oid::INT2 => 0,
        oid::INT4 => 1,
        oid::INT8 => 2,
        oid::NUMERIC => 3,
        oid::FLOAT4 => 4,
        oid::FLOAT8 => 5,
        _ => return None,
    })
}

/// A conversion of a non-NULL text value from one type to another.
pub(super) type Convert = fn(&str, SqlType, SqlType) -> Result<String, MergeError>;

/// The conversion of a cast from `from` to `to`.
pub(super) fn conversion(from: SqlType, to: SqlType) -> Result<Convert, MergeError> {
    use Kind::*;
    if from.oid == to.oid && to.typmod == -1 {
        return Ok(same);
    }
    let impossible = || {
        Err(MergeError::Sql {
            sqlstate: "42846",
            message: format!("cannot cast type {} to {}", from.name(), to.name()),
            detail: None,
        })
    };
    let unsupported = || {
        Err(MergeError::Unsupported(format!(
            "a cast of {} merged from several shards to {} is not supported; select the \
             aggregate by itself and convert it in the application, or filter on the shard \
             key to run on one shard",
            from.name(),
            to.name()
        )))
    };
    Ok(match (Kind::of(from), to.oid) {
        (Int, oid::INT2 | oid::INT4 | oid::INT8) => int_to_int,
        (Numeric, oid::INT2 | oid::INT4 | oid::INT8) => numeric_to_int,
        (Float, oid::INT2 | oid::INT4 | oid::INT8) => float_to_int,
        (Bool, oid::INT4) => bool_to_int,
        (Int | Numeric, oid::NUMERIC) => to_numeric,
        (Float, oid::NUMERIC) => float_to_numeric,
        (Int, oid::FLOAT4 | oid::FLOAT8) => int_to_float,
        (Numeric, oid::FLOAT4 | oid::FLOAT8) => numeric_to_float,
        (Float, oid::FLOAT4 | oid::FLOAT8) => float_to_float,
        (Bool | Printed, oid::INT2 | oid::INT8 | oid::NUMERIC | oid::FLOAT4 | oid::FLOAT8)
        | (Printed, oid::INT4) => return impossible(),
        (Bool, oid::TEXT | oid::VARCHAR) => bool_to_text,
        (Bpchar, oid::TEXT | oid::VARCHAR) => bpchar_to_text,
        (Int | Numeric | Float | Text | Printed, oid::TEXT | oid::VARCHAR) => to_text,
        _ => return unsupported(),
    })
}

/// How `COALESCE(value of type from, constant)` is evaluated.
pub(super) struct CoalesceStep {
    /// The common type PostgreSQL resolves for the pair.
    pub to: SqlType,
    /// The value converted to it.
    pub convert: Convert,
    /// The constant as a value of it (`None` for NULL).
    pub constant: Option<String>,
}

/// Resolves `COALESCE(value of type from, constant)`.
pub(super) fn coalesce(from: SqlType, constant: &Constant) -> Result<CoalesceStep, MergeError> {
    let unsupported = |what: &str| {
        Err(MergeError::Unsupported(format!(
            "COALESCE of {} merged from several shards with {what} is not supported; \
             select the aggregate by itself, or filter on the shard key to run on one shard",
            from.name()
        )))
    };
    let mismatch = |other: SqlType| {
        Err(MergeError::Sql {
            sqlstate: "42804",
            message: format!(
                "COALESCE types {} and {} cannot be matched",
                from.name(),
                other.name()
            ),
            detail: None,
        })
    };
    // A NULL or a string takes the value's type; the modifier does not survive.
    let (to, value) = match constant {
        Constant::Null => (SqlType::plain(from.oid), None),
        Constant::String(s) => match Kind::of(from) {
            Kind::Text | Kind::Bpchar if from.oid != oid::NAME => {
                (SqlType::plain(from.oid), Some(s.clone()))
            }
            Kind::Other => return unsupported("a quoted string"),
            _ => return unsupported("a quoted string (read as that type)"),
        },
        Constant::Bool(b) => {
            let other = SqlType::plain(oid::BOOL);
            match Kind::of(from) {
                Kind::Bool => (other, Some(if *b { "t" } else { "f" }.to_string())),
                Kind::Other => return unsupported("a boolean"),
                _ => return mismatch(other),
            }
        }
        Constant::Integer(text) | Constant::Decimal(text) => {
            let (ty, text) = number_literal(text, matches!(constant, Constant::Decimal(_)))?;
            let Some(rank) = numeric_rank(from) else {
                return match Kind::of(from) {
                    Kind::Other => unsupported("a number"),
                    _ => mismatch(ty),
                };
            };
            // The later type in the implicit-cast order wins (double precision, the
            // preferred type, is last).
            let to = if numeric_rank(ty) > Some(rank) {
                ty
            } else {
                SqlType::plain(from.oid)
            };
            let text = conversion(ty, to)?(&text, ty, to)?;
            (to, Some(text))
        }
    };
    Ok(CoalesceStep {
        to,
        convert: conversion(from, to)?,
        constant: value,
    })
}

/// A number literal's type and value text: an integer is integer, bigint or (too
/// large for either) numeric; anything with a point or exponent is numeric.
pub(super) fn number_literal(text: &str, decimal: bool) -> Result<(SqlType, String), MergeError> {
    let bad_literal = || bad("numeric", text);
    if !decimal {
        let magnitude = text.trim_start_matches('-');
        if let Ok(m) = magnitude.parse::<i64>() {
            let value = text.parse::<i64>().map_err(|_| bad_literal())?;
            let ty = if i32::try_from(m).is_ok() {
                oid::INT4
            } else {
                oid::INT8
            };
            return Ok((SqlType::plain(ty), value.to_string()));
        }
    }
    Ok((SqlType::plain(oid::NUMERIC), numeric_input(text)?))
}

/// The text PostgreSQL prints for a numeric read from `text` (`1e3` is `1000`, `.50` is
/// `0.50`): the display scale is the digits after the point less the exponent.
fn numeric_input(text: &str) -> Result<String, MergeError> {
    let value = BigDecimal::from_str(text).map_err(|_| bad("numeric", text))?;
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let fraction = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i64);
    Ok(plain(&value, (fraction - exponent).max(0)))
}

/// A numeric value printed with `scale` digits after the point.
pub(super) fn plain(value: &BigDecimal, scale: i64) -> String {
    let text = value
        .with_scale_round(scale, RoundingMode::HalfUp)
        .to_plain_string();
    // PostgreSQL has no negative zero.
    if value.is_zero()
        || text
            .trim_start_matches('-')
            .bytes()
            .all(|b| b == b'0' || b == b'.')
    {
        return text.trim_start_matches('-').to_string();
    }
    text
}

fn same(text: &str, _: SqlType, _: SqlType) -> Result<String, MergeError> {
    Ok(text.to_string())
}

/// The range error of an integer type.
pub(super) fn out_of_range(to: SqlType) -> MergeError {
    MergeError::Sql {
        sqlstate: "22003",
        message: format!("{} out of range", to.name()),
        detail: None,
    }
}

pub(super) fn checked_int(value: i128, to: SqlType) -> Result<String, MergeError> {
    let fits = match to.oid {
        oid::INT2 => i16::try_from(value).is_ok(),
        oid::INT4 => i32::try_from(value).is_ok(),
        _ => i64::try_from(value).is_ok(),
    };
    if !fits {
        return Err(out_of_range(to));
    }
    Ok(value.to_string())
}

fn int_to_int(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let value: i128 = text.parse().map_err(|_| bad_of(from, text))?;
    checked_int(value, to)
}

/// numeric to an integer: rounded half away from zero.
fn numeric_to_int(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let special = match text {
        "NaN" => "NaN",
        "Infinity" | "-Infinity" => "infinity",
        _ => "",
    };
    if !special.is_empty() {
        return Err(MergeError::Sql {
            sqlstate: "0A000",
            message: format!("cannot convert {special} to {}", to.name()),
            detail: None,
        });
    }
    let value = BigDecimal::from_str(text).map_err(|_| bad_of(from, text))?;
    let rounded = value.with_scale_round(0, RoundingMode::HalfUp);
    let value = rounded.to_i128().ok_or_else(|| out_of_range(to))?;
    checked_int(value, to)
}

/// A float to an integer: rounded to the nearest, ties to even (rint).
fn float_to_int(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let value = parse_float(text, from)?.round_ties_even();
    let limit = match to.oid {
        oid::INT2 => 32_768.0,
        oid::INT4 => 2_147_483_648.0,
        _ => 9_223_372_036_854_775_808.0,
    };
    if value.is_nan() || value < -limit || value >= limit {
        return Err(out_of_range(to));
    }
    Ok((value as i64).to_string())
}

fn bool_to_int(text: &str, _: SqlType, _: SqlType) -> Result<String, MergeError> {
    Ok(if text == "t" { "1" } else { "0" }.to_string())
}

/// To numeric from an integer or numeric: the modifier's rounding and range applied.
fn to_numeric(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let Some((precision, scale)) = to.numeric_typmod() else {
        return Ok(text.to_string());
    };
    let value = match text {
        "NaN" => return Ok(text.to_string()),
        "Infinity" | "-Infinity" => {
            return Err(numeric_overflow(format!(
                "A field with precision {precision}, scale {scale} cannot hold an infinite value."
            )));
        }
        _ => BigDecimal::from_str(text).map_err(|_| bad_of(from, text))?,
    };
    let rounded = value.with_scale_round(scale as i64, RoundingMode::HalfUp);
    let max_digits = precision - scale;
    if rounded.abs() >= BigDecimal::new(1.into(), -(max_digits as i64)) {
        let limit = if max_digits == 0 {
            "1".to_string()
        } else {
            format!("10^{max_digits}")
        };
        return Err(numeric_overflow(format!(
            "A field with precision {precision}, scale {scale} must round to an absolute \
             value less than {limit}."
        )));
    }
    Ok(plain(&rounded, scale.max(0) as i64))
}

fn numeric_overflow(detail: String) -> MergeError {
    MergeError::Sql {
        sqlstate: "22003",
        message: "numeric field overflow".to_string(),
        detail: Some(detail),
    }
}

/// A float to numeric: PostgreSQL prints it with 15 (real: 6) significant digits first
/// (`%.15g`), then reads that as numeric.
fn float_to_numeric(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let value = parse_float(text, from)?;
    let numeric = if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        let digits = if from.oid == oid::FLOAT4 { 6 } else { 15 };
        let scientific = format!("{:.*e}", digits - 1, value);
        let (mantissa, exponent) = scientific
            .split_once('e')
            .ok_or_else(|| bad_of(from, text))?;
        let exponent: i64 = exponent.parse().map_err(|_| bad_of(from, text))?;
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let digits = digits.trim_end_matches('0');
        if digits.is_empty() {
            "0".to_string()
        } else {
            let scale = digits.len() as i64 - 1 - exponent;
            let unscaled = format!("{}{digits}", if negative { "-" } else { "" });
            let value = BigDecimal::new(unscaled.parse().map_err(|_| bad_of(from, text))?, scale);
            plain(&value, scale.max(0))
        }
    };
    to_numeric(&numeric, SqlType::plain(oid::NUMERIC), to)
}

fn int_to_float(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let value: i64 = text.parse().map_err(|_| bad_of(from, text))?;
    Ok(if to.oid == oid::FLOAT4 {
        float4_text(value as f32)
    } else {
        float8_text(value as f64)
    })
}

/// numeric to a float: its text read as the float nearest to it; out of range when
/// that overflows, or underflows to zero.
fn numeric_to_float(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    match text {
        "NaN" | "Infinity" | "-Infinity" => return Ok(text.to_string()),
        _ => {}
    }
    let nonzero = text.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let out_of_range = || MergeError::Sql {
        sqlstate: "22003",
        message: format!("\"{text}\" is out of range for type {}", to.name()),
        detail: None,
    };
    if to.oid == oid::FLOAT4 {
        let value: f32 = text.parse().map_err(|_| bad_of(from, text))?;
        if value.is_infinite() || (value == 0.0 && nonzero) {
            return Err(out_of_range());
        }
        Ok(float4_text(value))
    } else {
        let value: f64 = text.parse().map_err(|_| bad_of(from, text))?;
        if value.is_infinite() || (value == 0.0 && nonzero) {
            return Err(out_of_range());
        }
        Ok(float8_text(value))
    }
}

/// real to double precision exactly; double precision to real rounded, with
/// PostgreSQL's overflow and underflow errors.
fn float_to_float(text: &str, from: SqlType, to: SqlType) -> Result<String, MergeError> {
    let value = parse_float(text, from)?;
    if to.oid == oid::FLOAT8 {
        return Ok(float8_text(value));
    }
    let narrowed = value as f32;
    let error = |what: &str| MergeError::Sql {
        sqlstate: "22003",
        message: format!("value out of range: {what}"),
        detail: None,
    };
    if narrowed.is_infinite() && !value.is_infinite() {
        return Err(error("overflow"));
    }
    if narrowed == 0.0 && value != 0.0 {
        return Err(error("underflow"));
    }
    Ok(float4_text(narrowed))
}

fn bool_to_text(text: &str, _: SqlType, to: SqlType) -> Result<String, MergeError> {
    Ok(cut(if text == "t" { "true" } else { "false" }, to))
}

fn bpchar_to_text(text: &str, _: SqlType, to: SqlType) -> Result<String, MergeError> {
    Ok(cut(text.trim_end_matches(' '), to))
}

fn to_text(text: &str, _: SqlType, to: SqlType) -> Result<String, MergeError> {
    Ok(cut(text, to))
}

/// An explicit cast to varchar(n) cuts the value to n characters.
fn cut(text: &str, to: SqlType) -> String {
    match to.varchar_length() {
        Some(n) => text.chars().take(n).collect(),
        None => text.to_string(),
    }
}

/// A float4 or float8 value, as the f64 it is exactly.
pub(super) fn parse_float(text: &str, from: SqlType) -> Result<f64, MergeError> {
    let special = match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(v);
    }
    if from.oid == oid::FLOAT4 {
        text.parse::<f32>()
            .map(f64::from)
            .map_err(|_| bad_of(from, text))
    } else {
        text.parse::<f64>().map_err(|_| bad_of(from, text))
    }
}

pub(super) fn bad_of(ty: SqlType, text: &str) -> MergeError {
    let name = match ty.oid {
        oid::INT2 => "smallint",
        oid::INT4 => "integer",
        oid::INT8 => "bigint",
        oid::FLOAT4 => "real",
        oid::FLOAT8 => "double precision",
        _ => "numeric",
    };
    bad(name, text)
}

#[cfg(test)]
mod tests {
    use super::super::compute::Computation;
    use super::super::row::Row;
    use super::*;
    use bytes::Bytes;
    use pgshard_router::plan::{ColumnRef, NumericTypmod, ValueExpr};

    const INT2: SqlType = SqlType::plain(oid::INT2);
    const INT4: SqlType = SqlType::plain(oid::INT4);
    const INT8: SqlType = SqlType::plain(oid::INT8);
    const NUMERIC: SqlType = SqlType::plain(oid::NUMERIC);
    const FLOAT4: SqlType = SqlType::plain(oid::FLOAT4);
    const FLOAT8: SqlType = SqlType::plain(oid::FLOAT8);
    const TEXT: SqlType = SqlType::plain(oid::TEXT);
    const BOOL: SqlType = SqlType::plain(oid::BOOL);
    const BPCHAR: SqlType = SqlType::plain(oid::BPCHAR);
    const DATE: SqlType = SqlType::plain(oid::DATE);

    fn numeric(precision: i32, scale: i32) -> CastTarget {
        CastTarget::Numeric {
            typmod: Some(NumericTypmod { precision, scale }),
        }
    }

    /// One cast or COALESCE around a value.
    enum ValueStep {
        Cast(CastTarget),
        Coalesce(Constant),
    }

    /// `steps` applied to a column of type `source`, innermost first.
    fn computation(steps: &[ValueStep], source: SqlType) -> Result<Computation, MergeError> {
        let mut expr = ValueExpr::Column(ColumnRef::Visible(0));
        for step in steps {
            expr = match step {
                ValueStep::Cast(target) => ValueExpr::Cast(Box::new(expr), *target),
                ValueStep::Coalesce(constant) => {
                    ValueExpr::Coalesce(Box::new(expr), constant.clone())
                }
            };
        }
        Computation::new(&expr, 1, &[source])
    }

    /// The computed text of `value` (of type `source`), or the error's SQLSTATE.
    fn run(
        steps: &[ValueStep],
        source: SqlType,
        value: Option<&str>,
    ) -> Result<Option<String>, String> {
        let computation = computation(steps, source).map_err(|e| e.sqlstate().to_string())?;
        let row = Row {
            values: vec![value.map(|v| Bytes::from(v.to_string()))],
        };
        computation
            .evaluate(&row)
            .map(|v| v.map(|b| String::from_utf8(b.to_vec()).unwrap()))
            .map_err(|e| e.sqlstate().to_string())
    }

    fn cast(target: CastTarget, source: SqlType, value: &str) -> Result<String, String> {
        run(&[ValueStep::Cast(target)], source, Some(value)).map(Option::unwrap)
    }

    fn ok(target: CastTarget, source: SqlType, value: &str) -> String {
        cast(target, source, value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(ok(CastTarget::Int4, INT8, "2"), "2");
        assert_eq!(ok(CastTarget::Int4, INT8, "-2147483648"), "-2147483648");
        assert_eq!(
            cast(CastTarget::Int4, INT8, "3000000000"),
            Err("22003".into())
        );
        assert_eq!(cast(CastTarget::Int2, INT8, "40000"), Err("22003".into()));
        assert_eq!(ok(CastTarget::Int8, INT2, "-7"), "-7");
        assert_eq!(ok(CastTarget::Int4, BOOL, "t"), "1");
        assert_eq!(ok(CastTarget::Int4, BOOL, "f"), "0");
        let error = computation(&[ValueStep::Cast(CastTarget::Int8)], BOOL).unwrap_err();
        assert_eq!(error.to_string(), "cannot cast type boolean to bigint");
        assert_eq!(error.sqlstate(), "42846");
    }

    #[test]
    fn numeric_rounds_half_away_from_zero() {
        assert_eq!(ok(CastTarget::Int4, NUMERIC, "2.5"), "3");
        assert_eq!(ok(CastTarget::Int4, NUMERIC, "-2.5"), "-3");
        assert_eq!(ok(CastTarget::Int2, NUMERIC, "0.5"), "1");
        assert_eq!(ok(CastTarget::Int8, NUMERIC, "1.4999999999999999999"), "1");
        assert_eq!(
            cast(CastTarget::Int4, NUMERIC, "2147483647.5"),
            Err("22003".into())
        );
        assert_eq!(cast(CastTarget::Int8, NUMERIC, "1e30"), Err("22003".into()));
        assert_eq!(cast(CastTarget::Int4, NUMERIC, "NaN"), Err("0A000".into()));
        assert_eq!(
            cast(CastTarget::Int4, NUMERIC, "Infinity"),
            Err("0A000".into())
        );
    }

    #[test]
    fn floats_round_half_to_even() {
        assert_eq!(ok(CastTarget::Int4, FLOAT8, "2.5"), "2");
        assert_eq!(ok(CastTarget::Int4, FLOAT8, "3.5"), "4");
        assert_eq!(ok(CastTarget::Int8, FLOAT8, "-0.5"), "0");
        assert_eq!(ok(CastTarget::Int2, FLOAT4, "2.5"), "2");
        assert_eq!(cast(CastTarget::Int4, FLOAT8, "NaN"), Err("22003".into()));
        assert_eq!(
            cast(CastTarget::Int4, FLOAT8, "2147483647.5"),
            Err("22003".into())
        );
        assert_eq!(ok(CastTarget::Int4, FLOAT8, "2147483647.4"), "2147483647");
        assert_eq!(
            cast(CastTarget::Int8, FLOAT8, "9.223372036854776e+18"),
            Err("22003".into())
        );
    }

    #[test]
    fn numeric_modifiers_round_and_check_the_precision() {
        assert_eq!(ok(numeric(10, 2), NUMERIC, "1.5000000000000000"), "1.50");
        assert_eq!(ok(numeric(10, 2), NUMERIC, "0.125"), "0.13");
        assert_eq!(ok(numeric(10, 2), NUMERIC, "-0.001"), "0.00");
        assert_eq!(ok(numeric(10, 2), INT8, "7"), "7.00");
        assert_eq!(ok(numeric(3, 0), NUMERIC, "1.5"), "2");
        assert_eq!(ok(numeric(3, -2), INT4, "1234"), "1200");
        assert_eq!(ok(numeric(2, 3), NUMERIC, "0.01"), "0.010");
        assert_eq!(ok(numeric(1, 1), NUMERIC, "0.94"), "0.9");
        assert_eq!(ok(numeric(5, 2), NUMERIC, "NaN"), "NaN");
        for (target, value) in [
            (numeric(5, 2), "1e10"),
            (numeric(5, 2), "1000"),
            (numeric(5, 2), "999.995"),
            (numeric(2, 3), "0.1"),
            (numeric(2, 3), "0.0999"),
            (numeric(1, 1), "0.96"),
            (numeric(5, 2), "Infinity"),
        ] {
            assert_eq!(cast(target, NUMERIC, value), Err("22003".into()), "{value}");
        }
        let error = computation(&[ValueStep::Cast(numeric(5, 2))], NUMERIC)
            .unwrap()
            .evaluate(&Row {
                values: vec![Some(Bytes::from("1000"))],
            })
            .unwrap_err();
        assert_eq!(error.to_string(), "numeric field overflow");
        let numeric_plain = CastTarget::Numeric { typmod: None };
        assert_eq!(
            ok(numeric_plain, NUMERIC, "1.5000000000000000"),
            "1.5000000000000000"
        );
        assert_eq!(ok(numeric_plain, INT8, "-12"), "-12");
    }

    #[test]
    fn floats_to_numeric_print_fifteen_digits_first() {
        let numeric_plain = CastTarget::Numeric { typmod: None };
        for (value, expected) in [
            ("0.1", "0.1"),
            ("1e+20", "100000000000000000000"),
            ("1.5e-05", "0.000015"),
            ("0.3333333333333333", "0.333333333333333"),
            ("1.2345678901234568e+17", "123456789012346000"),
            ("100000000000000.5", "100000000000000"),
            ("100000000000001.5", "100000000000002"),
            ("-0", "0"),
            ("0.0001", "0.0001"),
            ("Infinity", "Infinity"),
            ("NaN", "NaN"),
        ] {
            assert_eq!(ok(numeric_plain, FLOAT8, value), expected, "{value}");
        }
        assert_eq!(ok(numeric_plain, FLOAT4, "0.1"), "0.1");
        assert_eq!(ok(numeric_plain, FLOAT4, "1.2345678e+07"), "12345700");
        assert_eq!(ok(numeric_plain, FLOAT4, "1.2345675e+06"), "1234570");
        assert_eq!(ok(numeric(10, 2), FLOAT8, "0.125"), "0.13");
        assert_eq!(ok(numeric(10, 0), FLOAT8, "2.5"), "3");
        assert_eq!(cast(numeric(5, 2), FLOAT8, "1e+300"), Err("22003".into()));
    }

    #[test]
    fn conversions_to_floats() {
        assert_eq!(ok(CastTarget::Float8, INT8, "3"), "3");
        assert_eq!(
            ok(CastTarget::Float8, INT8, "9007199254740993"),
            "9.007199254740992e+15"
        );
        assert_eq!(ok(CastTarget::Float4, INT8, "16777217"), "1.6777216e+07");
        assert_eq!(
            ok(CastTarget::Float8, NUMERIC, "1.6666666666666667"),
            "1.6666666666666667"
        );
        assert_eq!(ok(CastTarget::Float4, NUMERIC, "1.5000000000000000"), "1.5");
        assert_eq!(ok(CastTarget::Float8, NUMERIC, "-Infinity"), "-Infinity");
        assert_eq!(ok(CastTarget::Float4, NUMERIC, "NaN"), "NaN");
        assert_eq!(
            cast(CastTarget::Float4, NUMERIC, "1e39"),
            Err("22003".into())
        );
        assert_eq!(
            cast(
                CastTarget::Float8,
                NUMERIC,
                &format!("1{}", "0".repeat(400))
            ),
            Err("22003".into())
        );
        assert_eq!(
            cast(
                CastTarget::Float8,
                NUMERIC,
                &format!("0.{}1", "0".repeat(400))
            ),
            Err("22003".into())
        );
        assert_eq!(ok(CastTarget::Float8, FLOAT4, "0.1"), "0.10000000149011612");
        assert_eq!(ok(CastTarget::Float4, FLOAT8, "0.30000000000000004"), "0.3");
        assert_eq!(
            cast(CastTarget::Float4, FLOAT8, "1e+300"),
            Err("22003".into())
        );
        assert_eq!(
            cast(CastTarget::Float4, FLOAT8, "1e-300"),
            Err("22003".into())
        );
        assert_eq!(ok(CastTarget::Float8, FLOAT8, "1e+300"), "1e+300");
    }

    #[test]
    fn text_is_the_output_text() {
        assert_eq!(ok(CastTarget::Text, INT8, "42"), "42");
        assert_eq!(ok(CastTarget::Text, NUMERIC, "1.50"), "1.50");
        assert_eq!(ok(CastTarget::Text, FLOAT8, "1e+20"), "1e+20");
        assert_eq!(ok(CastTarget::Text, BOOL, "t"), "true");
        assert_eq!(ok(CastTarget::Text, BPCHAR, "ab  "), "ab");
        assert_eq!(ok(CastTarget::Text, DATE, "2023-01-01"), "2023-01-01");
        assert_eq!(ok(CastTarget::Varchar { length: None }, BOOL, "f"), "false");
        assert_eq!(
            ok(CastTarget::Varchar { length: Some(2) }, INT8, "123"),
            "12"
        );
        assert_eq!(
            ok(CastTarget::Varchar { length: Some(3) }, TEXT, "żółw"),
            "żół"
        );
        let error = computation(&[ValueStep::Cast(CastTarget::Text)], SqlType::plain(600));
        assert_eq!(error.unwrap_err().sqlstate(), "0A000");
        let error = computation(&[ValueStep::Cast(CastTarget::Int4)], TEXT);
        assert_eq!(error.unwrap_err().sqlstate(), "0A000");
    }

    #[test]
    fn output_types_carry_their_modifiers() {
        let output = |target, source| {
            computation(&[ValueStep::Cast(target)], source)
                .unwrap()
                .output()
        };
        assert_eq!(output(CastTarget::Int4, INT8), INT4);
        assert_eq!(INT4.size(), 4);
        assert_eq!(
            output(numeric(10, 2), NUMERIC),
            SqlType {
                oid: oid::NUMERIC,
                typmod: 655_366
            }
        );
        assert_eq!(
            output(numeric(3, -2), NUMERIC).numeric_typmod(),
            Some((3, -2))
        );
        assert_eq!(
            output(CastTarget::Varchar { length: Some(1) }, INT8),
            SqlType {
                oid: oid::VARCHAR,
                typmod: 5
            }
        );
        assert_eq!(NUMERIC.size(), -1);
    }

    fn coalesce(constant: Constant) -> ValueStep {
        ValueStep::Coalesce(constant)
    }

    fn int(text: &str) -> Constant {
        Constant::Integer(text.to_string())
    }

    fn decimal(text: &str) -> Constant {
        Constant::Decimal(text.to_string())
    }

    /// The output type and the value of a NULL aggregate.
    fn on_null(constant: Constant, source: SqlType) -> (u32, Option<String>) {
        let steps = [coalesce(constant)];
        let wrapping = computation(&steps, source).unwrap();
        let value = wrapping
            .evaluate(&Row { values: vec![None] })
            .unwrap()
            .map(|b| String::from_utf8(b.to_vec()).unwrap());
        (wrapping.output().oid, value)
    }

    #[test]
    fn coalesce_resolves_the_common_type() {
        assert_eq!(on_null(int("0"), INT8), (oid::INT8, Some("0".into())));
        assert_eq!(on_null(int("0"), INT2), (oid::INT4, Some("0".into())));
        assert_eq!(on_null(int("-0"), INT8), (oid::INT8, Some("0".into())));
        assert_eq!(
            on_null(int("10000000000"), INT4),
            (oid::INT8, Some("10000000000".into()))
        );
        assert_eq!(on_null(int("0"), NUMERIC), (oid::NUMERIC, Some("0".into())));
        assert_eq!(
            on_null(decimal("0.0"), INT8),
            (oid::NUMERIC, Some("0.0".into()))
        );
        assert_eq!(
            on_null(decimal("1e3"), INT8),
            (oid::NUMERIC, Some("1000".into()))
        );
        assert_eq!(
            on_null(decimal(".5e1"), INT8),
            (oid::NUMERIC, Some("5".into()))
        );
        assert_eq!(
            on_null(decimal("00.50"), INT8),
            (oid::NUMERIC, Some("0.50".into()))
        );
        assert_eq!(
            on_null(decimal("-1.50"), INT8),
            (oid::NUMERIC, Some("-1.50".into()))
        );
        assert_eq!(
            on_null(decimal("0.5"), FLOAT4),
            (oid::FLOAT4, Some("0.5".into()))
        );
        assert_eq!(on_null(int("0"), FLOAT8), (oid::FLOAT8, Some("0".into())));
        assert_eq!(
            on_null(Constant::String("none".into()), TEXT),
            (oid::TEXT, Some("none".into()))
        );
        assert_eq!(
            on_null(Constant::String("zz".into()), BPCHAR),
            (oid::BPCHAR, Some("zz".into()))
        );
        assert_eq!(
            on_null(Constant::Bool(true), BOOL),
            (oid::BOOL, Some("t".into()))
        );
        assert_eq!(on_null(Constant::Null, INT8), (oid::INT8, None));
        // A present value is converted to the common type.
        let steps = [coalesce(decimal("0.5"))];
        assert_eq!(run(&steps, INT8, Some("3")), Ok(Some("3".into())));
        let steps = [coalesce(int("0"))];
        assert_eq!(run(&steps, INT2, Some("3")), Ok(Some("3".into())));
        let steps = [coalesce(decimal("1.5"))];
        assert_eq!(run(&steps, FLOAT4, Some("0.1")), Ok(Some("0.1".into())));
        // Types of different categories do not match, as on one server.
        let mismatch = computation(&[coalesce(int("0"))], TEXT).unwrap_err();
        assert_eq!(mismatch.sqlstate(), "42804");
        assert_eq!(
            mismatch.to_string(),
            "COALESCE types text and integer cannot be matched"
        );
        assert_eq!(
            computation(&[coalesce(Constant::Bool(false))], INT8)
                .unwrap_err()
                .sqlstate(),
            "42804"
        );
        // A string read as a number or a date is not the merge's to check.
        for source in [INT8, DATE] {
            let error = computation(&[coalesce(Constant::String("0".into()))], source);
            assert_eq!(error.unwrap_err().sqlstate(), "0A000");
        }
        // A constant the common type cannot hold fails whether needed or not.
        assert!(computation(&[coalesce(decimal("1e39"))], FLOAT4).is_err());
    }

    #[test]
    fn steps_apply_in_order() {
        // COALESCE(sum(x), 0)::int and COALESCE(sum(x)::int, 0)
        let steps = [coalesce(int("0")), ValueStep::Cast(CastTarget::Int4)];
        assert_eq!(run(&steps, INT8, None), Ok(Some("0".into())));
        assert_eq!(computation(&steps, INT8).unwrap().output(), INT4);
        let steps = [ValueStep::Cast(CastTarget::Int4), coalesce(int("0"))];
        assert_eq!(run(&steps, INT8, Some("5")), Ok(Some("5".into())));
        assert_eq!(computation(&steps, INT8).unwrap().output(), INT4);
        // sum(x)::numeric(10,1) keeps its modifier until COALESCE drops it.
        let steps = [ValueStep::Cast(numeric(10, 1)), coalesce(int("0"))];
        let wrapping = computation(&steps, NUMERIC).unwrap();
        assert_eq!(wrapping.output(), NUMERIC);
        assert_eq!(run(&steps, NUMERIC, Some("3.75")), Ok(Some("3.8".into())));
        // A NULL passes casts.
        assert_eq!(
            run(&[ValueStep::Cast(CastTarget::Int4)], INT8, None),
            Ok(None)
        );
    }
}
