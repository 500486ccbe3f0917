//! Casts and COALESCE around an aggregate in a fan-out query (`count(*)::int`,
//! `COALESCE(sum(x), 0)`): the shards compute the bare aggregate and the merge applies
//! the wrapping to the combined value, as [`ValueStep`]s.

use super::super::error::{unsupported, PlanError};
use super::super::names::parts;
use super::super::spec::{CastTarget, Constant, NumericTypmod, ValueStep};
use super::aggregate::aggregate;
use sqlparser::ast::{
    CastKind, CharacterLength, DataType, ExactNumberInfo, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, UnaryOperator, Value,
};

/// An aggregate call inside casts and COALESCE.
#[derive(Debug)]
pub(super) struct Wrapping<'e> {
    /// The aggregate call the shards compute.
    pub call: &'e Expr,
    /// What the merge applies to the combined value, innermost first.
    pub steps: Vec<ValueStep>,
}

/// One layer around the aggregate, outermost first while reading.
enum Layer<'e> {
    Cast(&'e DataType),
    Coalesce(&'e Expr),
}

impl Wrapping<'_> {
    /// The output name PostgreSQL gives the wrapped expression when it differs from the
    /// aggregate's own (a cast keeps its argument's name, COALESCE is `coalesce`).
    pub fn name(&self) -> Option<Ident> {
        self.steps
            .iter()
            .any(|s| matches!(s, ValueStep::Coalesce(_)))
            .then(|| Ident::with_quote('"', "coalesce"))
    }
}

/// Reads `expr` as casts and COALESCE around a mergeable aggregate call. `Ok(None)` when
/// it is not that (a bare aggregate included); an error when it is, but the merge
/// cannot apply the wrapping exactly.
pub(super) fn wrapping(expr: &Expr) -> Result<Option<Wrapping<'_>>, PlanError> {
    let mut layers = Vec::new();
    let mut current = expr;
    loop {
        match current {
            Expr::Nested(inner) => current = inner,
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr: inner,
                data_type,
                format: None,
            } => {
                layers.push(Layer::Cast(data_type));
                current = inner;
            }
            Expr::Function(function) => match coalesce_arguments(function) {
                Some((value, constant)) => {
                    layers.push(Layer::Coalesce(constant));
                    current = value;
                }
                None => break,
            },
            _ => break,
        }
    }
    if layers.is_empty() || aggregate(current).is_none() {
        return Ok(None);
    }
    let mut steps = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        steps.push(match layer {
            Layer::Cast(data_type) => {
                ValueStep::Cast(cast_target(data_type).ok_or_else(|| refuse_cast(data_type))?)
            }
            Layer::Coalesce(constant) => {
                ValueStep::Coalesce(literal(constant).ok_or_else(|| refuse_constant(constant))?)
            }
        });
    }
    Ok(Some(Wrapping {
        call: current,
        steps,
    }))
}

/// The two arguments of `COALESCE(value, constant)`.
fn coalesce_arguments(function: &Function) -> Option<(&Expr, &Expr)> {
    let [name] = function.name.0.as_slice() else {
        return None;
    };
    let name = name.as_ident()?;
    if name.quote_style.is_some() || !name.value.eq_ignore_ascii_case("coalesce") {
        return None;
    }
    if function.over.is_some()
        || function.filter.is_some()
        || function.null_treatment.is_some()
        || !function.within_group.is_empty()
        || !matches!(function.parameters, FunctionArguments::None)
    {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(value)), FunctionArg::Unnamed(FunctionArgExpr::Expr(constant))] => {
            Some((value, constant))
        }
        _ => None,
    }
}

/// The built-in target types the merge converts to exactly.
fn cast_target(data_type: &DataType) -> Option<CastTarget> {
    Some(match data_type {
        DataType::Int2(None) | DataType::SmallInt(None) => CastTarget::Int2,
        DataType::Int(None) | DataType::Int4(None) | DataType::Integer(None) => CastTarget::Int4,
        DataType::Int8(None) | DataType::BigInt(None) => CastTarget::Int8,
        DataType::Numeric(info) | DataType::Decimal(info) | DataType::Dec(info) => {
            CastTarget::Numeric {
                typmod: numeric_typmod(info)?,
            }
        }
        DataType::Real | DataType::Float4 => CastTarget::Float4,
        DataType::Float8 | DataType::DoublePrecision => CastTarget::Float8,
        // float(p): real up to 24 binary digits, double precision up to 53.
        DataType::Float(ExactNumberInfo::None) => CastTarget::Float8,
        DataType::Float(ExactNumberInfo::Precision(p)) => match p {
            1..=24 => CastTarget::Float4,
            25..=53 => CastTarget::Float8,
            _ => return None,
        },
        DataType::Text => CastTarget::Text,
        DataType::Varchar(length)
        | DataType::CharacterVarying(length)
        | DataType::CharVarying(length) => CastTarget::Varchar {
            length: match length {
                None => None,
                Some(CharacterLength::IntegerLength { length, unit: None })
                    if (1..=10_485_760).contains(length) =>
                {
                    Some(*length as u32)
                }
                Some(_) => return None,
            },
        },
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            let parts = parts(name);
            let type_name = match parts.as_slice() {
                [name] => name,
                [schema, name] if schema == "pg_catalog" => name,
                _ => return None,
            };
            match type_name.as_str() {
                "int2" => CastTarget::Int2,
                "int4" => CastTarget::Int4,
                "int8" => CastTarget::Int8,
                "numeric" => CastTarget::Numeric { typmod: None },
                "float4" => CastTarget::Float4,
                "float8" => CastTarget::Float8,
                "text" => CastTarget::Text,
                "varchar" => CastTarget::Varchar { length: None },
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// numeric's modifier, if valid for PostgreSQL 15 (precision 1 to 1000, scale -1000 to
/// 1000); `Some(None)` without one.
fn numeric_typmod(info: &ExactNumberInfo) -> Option<Option<NumericTypmod>> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => return Some(None),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if !(1..=1000).contains(&precision) || !(-1000..=1000).contains(&scale) {
        return None;
    }
    Some(Some(NumericTypmod {
        precision: precision as i32,
        scale: scale as i32,
    }))
}

/// A literal as COALESCE's second argument.
fn literal(expr: &Expr) -> Option<Constant> {
    match expr {
        Expr::Nested(inner) => literal(inner),
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => {
            let sign = if *op == UnaryOperator::Minus { "-" } else { "" };
            match literal(inner)? {
                Constant::Integer(digits) if !digits.starts_with('-') => {
                    Some(Constant::Integer(format!("{sign}{digits}")))
                }
                Constant::Decimal(digits) if !digits.starts_with('-') => {
                    Some(Constant::Decimal(format!("{sign}{digits}")))
                }
                _ => None,
            }
        }
        Expr::Value(value) => match &value.value {
            Value::Number(text, false) => {
                if text.bytes().all(|b| b.is_ascii_digit()) {
                    Some(Constant::Integer(text.clone()))
                } else if is_decimal(text) {
                    Some(Constant::Decimal(text.clone()))
                } else {
                    None
                }
            }
            Value::SingleQuotedString(s) => Some(Constant::String(s.clone())),
            Value::DollarQuotedString(s) => Some(Constant::String(s.value.clone())),
            Value::Boolean(b) => Some(Constant::Bool(*b)),
            Value::Null => Some(Constant::Null),
            _ => None,
        },
        _ => None,
    }
}

/// `1.5`, `.5`, `5.`, `1e3`, `2.5E-2`: digits with a point or an exponent.
fn is_decimal(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty());
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

fn refuse_cast(data_type: &DataType) -> PlanError {
    unsupported(format!(
        "a cast of an aggregate to {data_type} cannot be applied after merging the shards' results; \
         the merge casts aggregates to smallint, integer, bigint, numeric, real, double precision, \
         text and varchar only: select the aggregate by itself and convert it in the application, \
         or filter on the shard key to run on one shard"
    ))
}

fn refuse_constant(constant: &Expr) -> PlanError {
    unsupported(format!(
        "COALESCE(aggregate, {constant}) cannot be applied after merging the shards' results: \
         its second argument must be a literal (a number, a quoted string, TRUE, FALSE or NULL); \
         select the aggregate by itself, or filter on the shard key to run on one shard"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn expr(sql: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    fn steps(sql: &str) -> Vec<ValueStep> {
        let e = expr(sql);
        wrapping(&e).unwrap().unwrap().steps
    }

    #[test]
    fn casts_to_built_in_types() {
        use CastTarget::*;
        for (sql, target) in [
            ("count(*)::int", Int4),
            ("CAST(count(*) AS integer)", Int4),
            ("count(*)::int4", Int4),
            ("count(*)::smallint", Int2),
            ("count(*)::int2", Int2),
            ("count(*)::bigint", Int8),
            ("count(*)::pg_catalog.int8", Int8),
            ("sum(x)::real", Float4),
            ("sum(x)::float4", Float4),
            ("sum(x)::float(10)", Float4),
            ("sum(x)::float", Float8),
            ("sum(x)::double precision", Float8),
            ("sum(x)::float8", Float8),
            ("sum(x)::text", Text),
            ("sum(x)::varchar", Varchar { length: None }),
            ("sum(x)::character varying(3)", Varchar { length: Some(3) }),
            ("avg(x)::numeric", Numeric { typmod: None }),
            ("avg(x)::decimal", Numeric { typmod: None }),
            (
                "avg(x)::numeric(10,2)",
                Numeric {
                    typmod: Some(NumericTypmod {
                        precision: 10,
                        scale: 2,
                    }),
                },
            ),
            (
                "avg(x)::numeric(5)",
                Numeric {
                    typmod: Some(NumericTypmod {
                        precision: 5,
                        scale: 0,
                    }),
                },
            ),
        ] {
            assert_eq!(steps(sql), [ValueStep::Cast(target)], "{sql}");
        }
    }

    #[test]
    fn coalesce_with_literals_and_nesting() {
        assert_eq!(
            steps("COALESCE(sum(x), 0)"),
            [ValueStep::Coalesce(Constant::Integer("0".into()))]
        );
        assert_eq!(
            steps("coalesce((sum(x)), -1.50)::int"),
            [
                ValueStep::Coalesce(Constant::Decimal("-1.50".into())),
                ValueStep::Cast(CastTarget::Int4)
            ]
        );
        assert_eq!(
            steps("COALESCE(max(name)::text, 'none')"),
            [
                ValueStep::Cast(CastTarget::Text),
                ValueStep::Coalesce(Constant::String("none".into()))
            ]
        );
        assert_eq!(
            steps("COALESCE(bool_and(b), true)"),
            [ValueStep::Coalesce(Constant::Bool(true))]
        );
        assert_eq!(
            steps("COALESCE(sum(x), 1e3)"),
            [ValueStep::Coalesce(Constant::Decimal("1e3".into()))]
        );
        let e = expr("COALESCE(sum(x), 0)::int");
        let w = wrapping(&e).unwrap().unwrap();
        assert_eq!(w.call.to_string(), "sum(x)");
        assert_eq!(
            w.name().map(|i| i.to_string()).as_deref(),
            Some("\"coalesce\"")
        );
        let e = expr("count(*)::int");
        assert_eq!(wrapping(&e).unwrap().unwrap().name(), None);
    }

    #[test]
    fn other_expressions_are_not_wrapping() {
        for sql in [
            "count(*)",
            "x::int",
            "(count(*) + 1)::int",
            "COALESCE(0, sum(x))",
            "COALESCE(sum(x), 0, 1)",
            "string_agg(name, ',')::text",
            "app.coalesce(sum(x), 0)",
        ] {
            assert!(wrapping(&expr(sql)).unwrap().is_none(), "{sql}");
        }
    }

    #[test]
    fn unsupported_targets_and_arguments_are_refused() {
        for sql in [
            "count(*)::oid",
            "max(d)::date",
            "sum(x)::int[]",
            "sum(x)::numeric(0)",
            "sum(x)::char(3)",
            "COALESCE(sum(x), y)",
            "COALESCE(sum(x), $1)",
            "COALESCE(sum(x), 0::bigint)",
            "COALESCE(sum(x), max(y))",
        ] {
            let e = expr(sql);
            let error = wrapping(&e).unwrap_err();
            assert_eq!(error.sqlstate(), "0A000", "{sql}");
        }
    }
}
