//! PostgreSQL's arithmetic on merged values (`sum(a) / sum(b)`, `count(*) * 2`,
//! `round(avg(x), 2)`): which operator or function the types select, and what it
//! computes, with the server's result type, rounding and errors.
//!
//! Values are text, as the merge keeps them; each operation reads its operands as the
//! type the operator takes (the caller converts them first) and prints its result.

use std::str::FromStr;

use bigdecimal::num_bigint::BigInt;
use bigdecimal::{BigDecimal, RoundingMode, Zero};
use pgshard_router::plan::{ArithmeticOp, NumericFunction};

use super::cast::{checked_int, numeric_rank, oid, parse_float, plain, SqlType};
use super::error::MergeError;
use super::float_text::{float4_text, float8_text};
use super::numeric::{display_scale, numeric_div};

/// The widest display scale `round` and `trunc` take (NUMERIC_MAX_RESULT_SCALE).
const MAX_RESULT_SCALE: i64 = 2000;

/// How a numeric type computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Int,
    Numeric,
    Float,
}

fn class(ty: SqlType) -> Option<Class> {
    Some(match ty.oid {
        oid::INT2 | oid::INT4 | oid::INT8 => Class::Int,
        oid::NUMERIC => Class::Numeric,
        oid::FLOAT4 | oid::FLOAT8 => Class::Float,
        _ => return None,
    })
}

const fn plain_type(oid: u32) -> SqlType {
    SqlType { oid, typmod: -1 }
}

fn symbol(op: ArithmeticOp) -> &'static str {
    match op {
        ArithmeticOp::Add => "+",
        ArithmeticOp::Subtract => "-",
        ArithmeticOp::Multiply => "*",
        ArithmeticOp::Divide => "/",
        ArithmeticOp::Modulo => "%",
    }
}

/// A type the merge does not compute with: refused, since its operators (dates,
/// intervals, text…) are not evaluated here.
fn unsupported_operand(ty: SqlType, what: &str) -> MergeError {
    MergeError::Unsupported(format!(
        "{what} on {} values merged from several shards is not supported; select the \
         aggregates by themselves and compute the rest in the application, or filter on the \
         shard key to run on one shard",
        ty.name()
    ))
}

/// The type both operands of `left op right` are converted to, which is also the
/// result's type: the later of the two in PostgreSQL's implicit-cast order, except
/// that a real meets any other type as double precision.
pub fn operator_type(
    op: ArithmeticOp,
    left: SqlType,
    right: SqlType,
) -> Result<SqlType, MergeError> {
    let what = format!("the operator {}", symbol(op));
    let (Some(l), Some(r)) = (numeric_rank(left), numeric_rank(right)) else {
        let odd = if numeric_rank(left).is_none() {
            left
        } else {
            right
        };
        return Err(unsupported_operand(odd, &what));
    };
    let ty = match (left.oid, right.oid) {
        (oid::FLOAT4, oid::FLOAT4) => plain_type(oid::FLOAT4),
        (oid::FLOAT4 | oid::FLOAT8, _) | (_, oid::FLOAT4 | oid::FLOAT8) => plain_type(oid::FLOAT8),
        _ if l >= r => plain_type(left.oid),
        _ => plain_type(right.oid),
    };
    if op == ArithmeticOp::Modulo && class(ty) == Some(Class::Float) {
        return Err(MergeError::Sql {
            sqlstate: "42883",
            message: format!(
                "operator does not exist: {} % {}",
                left.name(),
                right.name()
            ),
            detail: None,
        });
    }
    Ok(ty)
}

/// `left op right`, both of type `ty` (from [`operator_type`]).
pub fn operate(
    op: ArithmeticOp,
    ty: SqlType,
    left: &str,
    right: &str,
) -> Result<String, MergeError> {
    match class(ty) {
        Some(Class::Int) => int_operate(op, ty, int(left, ty)?, int(right, ty)?),
        Some(Class::Numeric) => numeric_operate(op, &numeric(left)?, &numeric(right)?),
        Some(Class::Float) => float_operate(op, ty, left, right),
        None => Err(unsupported_operand(ty, "arithmetic")),
    }
}

/// Unary minus of a value of type `ty`.
pub fn negate(ty: SqlType, value: &str) -> Result<String, MergeError> {
    match class(ty) {
        Some(Class::Int) => checked_int(-int(value, ty)?, ty),
        Some(Class::Numeric) => {
            let v = numeric(value)?;
            Ok(plain(&-&v, display_scale(&v)))
        }
        Some(Class::Float) => Ok(float_text(ty, -parse_float(value, ty)?)),
        None => Err(unsupported_operand(ty, "unary minus")),
    }
}

fn division_by_zero() -> MergeError {
    MergeError::Sql {
        sqlstate: "22012",
        message: "division by zero".to_string(),
        detail: None,
    }
}

fn int(text: &str, ty: SqlType) -> Result<i128, MergeError> {
    text.parse().map_err(|_| super::cast::bad_of(ty, text))
}

/// Integer operators: the result range-checked for the type; `/` truncates toward zero
/// and `%` takes the dividend's sign, as C does.
fn int_operate(op: ArithmeticOp, ty: SqlType, a: i128, b: i128) -> Result<String, MergeError> {
    let result = match op {
        ArithmeticOp::Add => a + b,
        ArithmeticOp::Subtract => a - b,
        ArithmeticOp::Multiply => a * b,
        ArithmeticOp::Divide if b == 0 => return Err(division_by_zero()),
        ArithmeticOp::Divide => a / b,
        ArithmeticOp::Modulo if b == 0 => return Err(division_by_zero()),
        ArithmeticOp::Modulo => a % b,
    };
    checked_int(result, ty)
}

/// A numeric operand; NaN and infinities are refused, as their arithmetic is not
/// evaluated here.
fn numeric(text: &str) -> Result<BigDecimal, MergeError> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Err(MergeError::Unsupported(format!(
            "arithmetic on the numeric value {text} merged from several shards is not \
             supported; filter on the shard key to run on one shard"
        )));
    }
    BigDecimal::from_str(text).map_err(|_| super::cast::bad_of(plain_type(oid::NUMERIC), text))
}

/// numeric operators with PostgreSQL's result scales: the larger scale for `+`, `-`
/// and `%`, the sum of the scales for `*`, `select_div_scale` for `/`.
fn numeric_operate(op: ArithmeticOp, a: &BigDecimal, b: &BigDecimal) -> Result<String, MergeError> {
    let (sa, sb) = (display_scale(a), display_scale(b));
    Ok(match op {
        ArithmeticOp::Add => plain(&(a + b), sa.max(sb)),
        ArithmeticOp::Subtract => plain(&(a - b), sa.max(sb)),
        ArithmeticOp::Multiply => plain(&(a * b), sa + sb),
        ArithmeticOp::Divide => {
            let quotient = numeric_div(a, b).ok_or_else(division_by_zero)?;
            let scale = display_scale(&quotient);
            plain(&quotient, scale)
        }
        ArithmeticOp::Modulo => {
            if b.is_zero() {
                return Err(division_by_zero());
            }
            // At a common scale both are integers: the remainder of those (sign of the
            // dividend) at that scale.
            let scale = sa.max(sb);
            let unscaled =
                |v: &BigDecimal| -> BigInt { v.with_scale(scale).as_bigint_and_exponent().0 };
            let remainder = unscaled(a) % unscaled(b);
            plain(&BigDecimal::new(remainder, scale), scale)
        }
    })
}

fn float_text(ty: SqlType, value: f64) -> String {
    if ty.oid == oid::FLOAT4 {
        float4_text(value as f32)
    } else {
        float8_text(value)
    }
}

fn float_error(what: &str) -> MergeError {
    MergeError::Sql {
        sqlstate: "22003",
        message: format!("value out of range: {what}"),
        detail: None,
    }
}

/// float4 and float8 operators, computed in the type's own precision, with
/// PostgreSQL's overflow, underflow and division-by-zero checks.
fn float_operate(
    op: ArithmeticOp,
    ty: SqlType,
    left: &str,
    right: &str,
) -> Result<String, MergeError> {
    let (a, b) = (parse_float(left, ty)?, parse_float(right, ty)?);
    let single = ty.oid == oid::FLOAT4;
    // Computed in f32 for real: each operation rounds to the type's precision.
    let compute = |x: f64, y: f64, f: fn(f64, f64) -> f64, g: fn(f32, f32) -> f32| {
        if single {
            f64::from(g(x as f32, y as f32))
        } else {
            f(x, y)
        }
    };
    let result = match op {
        ArithmeticOp::Add => compute(a, b, |x, y| x + y, |x, y| x + y),
        ArithmeticOp::Subtract => compute(a, b, |x, y| x - y, |x, y| x - y),
        ArithmeticOp::Multiply => compute(a, b, |x, y| x * y, |x, y| x * y),
        ArithmeticOp::Divide => {
            if b == 0.0 && !a.is_nan() {
                return Err(division_by_zero());
            }
            compute(a, b, |x, y| x / y, |x, y| x / y)
        }
        ArithmeticOp::Modulo => return Err(unsupported_operand(ty, "the operator %")),
    };
    let overflow = match op {
        ArithmeticOp::Divide => result.is_infinite() && !a.is_infinite(),
        _ => result.is_infinite() && !a.is_infinite() && !b.is_infinite(),
    };
    if overflow {
        return Err(float_error("overflow"));
    }
    let underflow = match op {
        ArithmeticOp::Multiply => result == 0.0 && a != 0.0 && b != 0.0,
        ArithmeticOp::Divide => result == 0.0 && a != 0.0 && !b.is_infinite(),
        _ => false,
    };
    if underflow {
        return Err(float_error("underflow"));
    }
    Ok(float_text(ty, result))
}

/// The argument types `f` is called with for arguments of types `args`, and its
/// result type, as PostgreSQL picks the function: `round(x, n)` and `trunc(x, n)` take
/// a numeric and an integer; with one argument they, `ceil` and `floor` take numeric
/// for a numeric, double precision for anything else; `abs` keeps its argument's type.
pub fn function_types(
    f: NumericFunction,
    args: &[SqlType],
) -> Result<(Vec<SqlType>, SqlType), MergeError> {
    let name = function_name(f);
    let missing = || MergeError::Sql {
        sqlstate: "42883",
        message: format!(
            "function {name}({}) does not exist",
            args.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
        ),
        detail: None,
    };
    let numeric_type = plain_type(oid::NUMERIC);
    match (f, args) {
        (NumericFunction::Abs, [ty]) => match class(*ty) {
            Some(_) => Ok((vec![plain_type(ty.oid)], plain_type(ty.oid))),
            None => Err(unsupported_operand(*ty, name)),
        },
        (_, [ty]) => match class(*ty) {
            Some(Class::Numeric) => Ok((vec![numeric_type], numeric_type)),
            Some(_) => Ok((vec![plain_type(oid::FLOAT8)], plain_type(oid::FLOAT8))),
            None => Err(unsupported_operand(*ty, name)),
        },
        (NumericFunction::Round | NumericFunction::Trunc, [value, scale]) => {
            if class(*value).is_none() {
                return Err(unsupported_operand(*value, name));
            }
            if !matches!(value.oid, oid::INT2 | oid::INT4 | oid::INT8 | oid::NUMERIC)
                || !matches!(scale.oid, oid::INT2 | oid::INT4)
            {
                return Err(missing());
            }
            Ok((vec![numeric_type, plain_type(oid::INT4)], numeric_type))
        }
        _ => Err(missing()),
    }
}

fn function_name(f: NumericFunction) -> &'static str {
    match f {
        NumericFunction::Round => "round",
        NumericFunction::Trunc => "trunc",
        NumericFunction::Abs => "abs",
        NumericFunction::Ceil => "ceil",
        NumericFunction::Floor => "floor",
    }
}

/// `f(args)`, the arguments already of the types [`function_types`] gave.
pub fn call(f: NumericFunction, types: &[SqlType], args: &[String]) -> Result<String, MergeError> {
    let (Some(ty), Some(value)) = (types.first(), args.first()) else {
        return Err(MergeError::Mismatch);
    };
    let ty = *ty;
    match class(ty) {
        Some(Class::Int) => {
            // Only abs keeps an integer type.
            let v = int(value, ty)?;
            checked_int(v.abs(), ty)
        }
        Some(Class::Float) => {
            let v = parse_float(value, ty)?;
            let result = match f {
                NumericFunction::Round => v.round_ties_even(),
                NumericFunction::Trunc => v.trunc(),
                NumericFunction::Abs => v.abs(),
                NumericFunction::Ceil => v.ceil(),
                NumericFunction::Floor => v.floor(),
            };
            Ok(float_text(ty, result))
        }
        Some(Class::Numeric) => {
            let v = numeric(value)?;
            let scale = match args.get(1) {
                Some(s) => s
                    .parse::<i64>()
                    .map_err(|_| super::cast::bad_of(plain_type(oid::INT4), s))?
                    .clamp(-MAX_RESULT_SCALE, MAX_RESULT_SCALE),
                None => 0,
            };
            let rounded = |mode| {
                // A negative scale rounds to tens, hundreds…, printed without decimals.
                let r = v.with_scale_round(scale, mode);
                plain(&r, scale.max(0))
            };
            Ok(match f {
                NumericFunction::Round => rounded(RoundingMode::HalfUp),
                NumericFunction::Trunc => rounded(RoundingMode::Down),
                NumericFunction::Ceil => rounded(RoundingMode::Ceiling),
                NumericFunction::Floor => rounded(RoundingMode::Floor),
                NumericFunction::Abs => plain(&v.abs(), display_scale(&v)),
            })
        }
        None => Err(unsupported_operand(ty, function_name(f))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT2: SqlType = plain_type(oid::INT2);
    const INT4: SqlType = plain_type(oid::INT4);
    const INT8: SqlType = plain_type(oid::INT8);
    const NUMERIC: SqlType = plain_type(oid::NUMERIC);
    const FLOAT4: SqlType = plain_type(oid::FLOAT4);
    const FLOAT8: SqlType = plain_type(oid::FLOAT8);

    fn op(op: ArithmeticOp, l: SqlType, r: SqlType, a: &str, b: &str) -> Result<String, String> {
        let ty = operator_type(op, l, r).map_err(|e| e.sqlstate().to_string())?;
        operate(op, ty, a, b).map_err(|e| e.sqlstate().to_string())
    }

    #[test]
    fn operand_types_resolve_as_postgres_resolves_them() {
        use ArithmeticOp::*;
        let cases = [
            (INT2, INT2, INT2),
            (INT2, INT4, INT4),
            (INT8, INT4, INT8),
            (INT8, NUMERIC, NUMERIC),
            (INT4, FLOAT4, FLOAT8),
            (NUMERIC, FLOAT4, FLOAT8),
            (FLOAT4, FLOAT4, FLOAT4),
            (FLOAT4, FLOAT8, FLOAT8),
        ];
        for (l, r, ty) in cases {
            assert_eq!(operator_type(Add, l, r).unwrap(), ty, "{l:?} {r:?}");
            assert_eq!(operator_type(Divide, r, l).unwrap(), ty, "{r:?} {l:?}");
        }
        assert_eq!(operator_type(Modulo, INT2, INT8).unwrap(), INT8);
        assert_eq!(
            operator_type(Modulo, FLOAT8, INT4).unwrap_err().sqlstate(),
            "42883"
        );
        let date = plain_type(oid::DATE);
        assert_eq!(
            operator_type(Subtract, date, date).unwrap_err().sqlstate(),
            "0A000"
        );
    }

    #[test]
    fn integers_truncate_and_check_their_range() {
        use ArithmeticOp::*;
        assert_eq!(op(Divide, INT8, INT4, "7", "2"), Ok("3".into()));
        assert_eq!(op(Divide, INT8, INT4, "-7", "2"), Ok("-3".into()));
        assert_eq!(op(Modulo, INT4, INT4, "-5", "3"), Ok("-2".into()));
        assert_eq!(op(Modulo, INT4, INT4, "5", "-3"), Ok("2".into()));
        assert_eq!(op(Divide, INT4, INT4, "1", "0"), Err("22012".into()));
        assert_eq!(op(Modulo, INT4, INT4, "1", "0"), Err("22012".into()));
        assert_eq!(
            op(Divide, INT4, INT4, "-2147483648", "-1"),
            Err("22003".into())
        );
        assert_eq!(op(Modulo, INT4, INT4, "-2147483648", "-1"), Ok("0".into()));
        assert_eq!(op(Add, INT2, INT2, "32767", "1"), Err("22003".into()));
        assert_eq!(
            op(Multiply, INT8, INT4, "4611686018427387904", "2"),
            Err("22003".into())
        );
        assert_eq!(negate(INT2, "-32768").unwrap_err().sqlstate(), "22003");
    }

    #[test]
    fn numeric_scales_follow_postgres() {
        use ArithmeticOp::*;
        assert_eq!(
            op(Multiply, NUMERIC, NUMERIC, "7.00", "1.5"),
            Ok("10.500".into())
        );
        assert_eq!(op(Add, NUMERIC, INT4, "1.50", "1"), Ok("2.50".into()));
        assert_eq!(
            op(Subtract, NUMERIC, NUMERIC, "1.5", "1.5"),
            Ok("0.0".into())
        );
        assert_eq!(
            op(Divide, NUMERIC, INT4, "10", "4"),
            Ok("2.5000000000000000".into())
        );
        assert_eq!(op(Modulo, NUMERIC, INT4, "5.5", "2"), Ok("1.5".into()));
        assert_eq!(
            op(Modulo, NUMERIC, NUMERIC, "-5.5", "2.25"),
            Ok("-1.00".into())
        );
        assert_eq!(
            op(Divide, NUMERIC, NUMERIC, "1", "0.0"),
            Err("22012".into())
        );
        assert_eq!(op(Add, NUMERIC, NUMERIC, "NaN", "1"), Err("0A000".into()));
        assert_eq!(negate(NUMERIC, "0.00").unwrap(), "0.00");
        assert_eq!(negate(NUMERIC, "1.50").unwrap(), "-1.50");
    }

    #[test]
    fn floats_compute_in_their_precision() {
        use ArithmeticOp::*;
        assert_eq!(
            op(Add, FLOAT8, FLOAT8, "0.1", "0.2"),
            Ok("0.30000000000000004".into())
        );
        assert_eq!(
            op(Divide, FLOAT4, FLOAT4, "1", "3"),
            Ok("0.33333334".into())
        );
        assert_eq!(
            op(Multiply, FLOAT8, INT4, "0.3333333432674408", "3"),
            Ok("1.0000000298023224".into())
        );
        assert_eq!(
            op(Multiply, FLOAT8, FLOAT8, "1e308", "10"),
            Err("22003".into())
        );
        assert_eq!(
            op(Divide, FLOAT8, FLOAT8, "1e-308", "1e300"),
            Err("22003".into())
        );
        assert_eq!(op(Divide, FLOAT8, FLOAT8, "1", "0"), Err("22012".into()));
        assert_eq!(op(Divide, FLOAT8, FLOAT8, "NaN", "0"), Ok("NaN".into()));
    }

    fn run(f: NumericFunction, args: &[(SqlType, &str)]) -> Result<String, String> {
        let types: Vec<SqlType> = args.iter().map(|a| a.0).collect();
        let (arg_types, _) = function_types(f, &types).map_err(|e| e.sqlstate().to_string())?;
        let values: Vec<String> = args.iter().map(|a| a.1.to_string()).collect();
        call(f, &arg_types, &values).map_err(|e| e.sqlstate().to_string())
    }

    #[test]
    fn functions_pick_postgres_variants() {
        use NumericFunction::*;
        assert_eq!(
            function_types(Round, &[INT8]).unwrap().1,
            FLOAT8,
            "round(bigint) is round(double precision)"
        );
        assert_eq!(function_types(Round, &[NUMERIC, INT4]).unwrap().1, NUMERIC);
        assert_eq!(function_types(Abs, &[FLOAT4]).unwrap().1, FLOAT4);
        assert_eq!(
            function_types(Round, &[FLOAT8, INT4])
                .unwrap_err()
                .sqlstate(),
            "42883"
        );
        assert_eq!(
            function_types(Round, &[NUMERIC, INT8])
                .unwrap_err()
                .sqlstate(),
            "42883"
        );
        assert_eq!(run(Round, &[(NUMERIC, "1234.5")]), Ok("1235".into()));
        assert_eq!(run(Round, &[(NUMERIC, "-2.5")]), Ok("-3".into()));
        assert_eq!(
            run(Round, &[(NUMERIC, "1234.5"), (INT4, "-2")]),
            Ok("1200".into())
        );
        assert_eq!(
            run(Round, &[(NUMERIC, "2.345"), (INT4, "5")]),
            Ok("2.34500".into())
        );
        assert_eq!(
            run(Trunc, &[(NUMERIC, "-2.789"), (INT4, "2")]),
            Ok("-2.78".into())
        );
        assert_eq!(run(Ceil, &[(NUMERIC, "-0.5")]), Ok("0".into()));
        assert_eq!(run(Floor, &[(NUMERIC, "-1.2")]), Ok("-2".into()));
        assert_eq!(run(Round, &[(FLOAT8, "2.5")]), Ok("2".into()));
        assert_eq!(run(Trunc, &[(FLOAT8, "-2.7")]), Ok("-2".into()));
        assert_eq!(run(Abs, &[(INT4, "-2147483648")]), Err("22003".into()));
        assert_eq!(run(Abs, &[(NUMERIC, "-1.50")]), Ok("1.50".into()));
    }
}
