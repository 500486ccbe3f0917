//! Expressions over aggregates in a fan-out query (`count(*)::int`,
//! `COALESCE(sum(x), 0)`, `sum(a) / sum(b)`, `round(avg(x), 2)`): the shards compute the
//! bare aggregates and the merge evaluates the expression over the combined values, as a
//! [`ValueExpr`].

use super::super::error::{unsupported, PlanError};
use super::super::names::{last, parts};
use super::super::spec::{
    ArithmeticOp, CastTarget, ColumnRef, Constant, NumericFunction, NumericTypmod, ValueExpr,
};
use super::aggregate::{aggregate, first_aggregate};
use sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, CharacterLength, DataType, DateTimeField,
    ExactNumberInfo, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    UnaryOperator, Value,
};

/// Reads `expr` as a [`ValueExpr`] the merge evaluates. `leaf` gives the column of each
/// aggregate call and of each other operand that is neither a literal nor an operation
/// the merge applies (a group key, or an error there). Refuses what the merge cannot
/// evaluate exactly.
pub(super) fn value_expr(
    expr: &Expr,
    leaf: &mut dyn FnMut(&Expr) -> Result<ColumnRef, PlanError>,
) -> Result<ValueExpr, PlanError> {
    if aggregate(expr).is_some() {
        return Ok(ValueExpr::Column(leaf(expr)?));
    }
    Ok(match expr {
        Expr::Nested(inner) => value_expr(inner, leaf)?,
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr: inner,
            data_type,
            format: None,
        } => {
            let target = cast_target(data_type).ok_or_else(|| refuse_cast(data_type))?;
            ValueExpr::Cast(Box::new(value_expr(inner, leaf)?), target)
        }
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match literal(expr) {
            Some(constant) => ValueExpr::Constant(constant),
            None => ValueExpr::Negate(Box::new(value_expr(inner, leaf)?)),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr: inner,
        } => value_expr(inner, leaf)?,
        Expr::BinaryOp { left, op, right } if arithmetic_op(op).is_some() => {
            let op = arithmetic_op(op).ok_or_else(|| refuse_expression(expr))?;
            ValueExpr::Arithmetic(
                op,
                Box::new(value_expr(left, leaf)?),
                Box::new(value_expr(right, leaf)?),
            )
        }
        Expr::Value(_) => {
            ValueExpr::Constant(literal(expr).ok_or_else(|| refuse_expression(expr))?)
        }
        // sqlparser reads `ceil(x)` and `floor(x)` as expressions of their own.
        Expr::Ceil {
            expr: inner,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => ValueExpr::Function(NumericFunction::Ceil, vec![value_expr(inner, leaf)?]),
        Expr::Floor {
            expr: inner,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => ValueExpr::Function(NumericFunction::Floor, vec![value_expr(inner, leaf)?]),
        Expr::Function(function) => {
            if let Some((value, constant)) = coalesce_arguments(function) {
                let constant = literal(constant).ok_or_else(|| refuse_constant(constant))?;
                ValueExpr::Coalesce(Box::new(value_expr(value, leaf)?), constant)
            } else if let Some((f, args)) = numeric_function(function) {
                let args = args
                    .into_iter()
                    .map(|a| value_expr(a, leaf))
                    .collect::<Result<_, _>>()?;
                ValueExpr::Function(f, args)
            } else if first_aggregate(expr).is_some() {
                return Err(refuse_expression(expr));
            } else {
                ValueExpr::Column(leaf(expr)?)
            }
        }
        _ if first_aggregate(expr).is_some() => return Err(refuse_expression(expr)),
        _ => ValueExpr::Column(leaf(expr)?),
    })
}

/// The name PostgreSQL gives a select item without an alias (its `FigureColname`): a
/// column's or function's name, through casts; a cast of anything else is named by the
/// type; an operator gives `?column?`.
pub(super) fn output_name(expr: &Expr) -> String {
    figure_name(expr)
        .0
        .unwrap_or_else(|| "?column?".to_string())
}

/// The name and how strongly it names the expression (2: a column or function, 1: a
/// type, 0: none).
fn figure_name(expr: &Expr) -> (Option<String>, u8) {
    match expr {
        Expr::Nested(inner) => figure_name(inner),
        Expr::Identifier(ident) => (Some(super::super::names::ident(ident)), 2),
        Expr::CompoundIdentifier(idents) => (idents.last().map(super::super::names::ident), 2),
        Expr::Function(function) => (Some(last(&function.name)), 2),
        Expr::Ceil { .. } => (Some("ceil".to_string()), 2),
        Expr::Floor { .. } => (Some("floor".to_string()), 2),
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => match figure_name(inner) {
            (name, 2) => (name, 2),
            other => match cast_target(data_type) {
                Some(target) => (Some(type_name(target).to_string()), 1),
                None => other,
            },
        },
        _ => (None, 0),
    }
}

/// The type's name as PostgreSQL's grammar resolves it (`int` is `int4`).
fn type_name(target: CastTarget) -> &'static str {
    match target {
        CastTarget::Int2 => "int2",
        CastTarget::Int4 => "int4",
        CastTarget::Int8 => "int8",
        CastTarget::Numeric { .. } => "numeric",
        CastTarget::Float4 => "float4",
        CastTarget::Float8 => "float8",
        CastTarget::Text => "text",
        CastTarget::Varchar { .. } => "varchar",
    }
}

fn arithmetic_op(op: &BinaryOperator) -> Option<ArithmeticOp> {
    Some(match op {
        BinaryOperator::Plus => ArithmeticOp::Add,
        BinaryOperator::Minus => ArithmeticOp::Subtract,
        BinaryOperator::Multiply => ArithmeticOp::Multiply,
        BinaryOperator::Divide => ArithmeticOp::Divide,
        BinaryOperator::Modulo => ArithmeticOp::Modulo,
        _ => return None,
    })
}

/// A call of a built-in numeric function the merge applies, with its arguments:
/// `round`/`trunc` take one or two, `abs`/`ceil`/`ceiling`/`floor` one.
fn numeric_function(function: &Function) -> Option<(NumericFunction, Vec<&Expr>)> {
    let args = plain_arguments(function)?;
    let f = match last(&function.name).as_str() {
        "round" => NumericFunction::Round,
        "trunc" => NumericFunction::Trunc,
        "abs" => NumericFunction::Abs,
        "ceil" | "ceiling" => NumericFunction::Ceil,
        "floor" => NumericFunction::Floor,
        _ => return None,
    };
    let arity_ok = match f {
        NumericFunction::Round | NumericFunction::Trunc => (1..=2).contains(&args.len()),
        _ => args.len() == 1,
    };
    arity_ok.then_some((f, args))
}

/// The positional arguments of a plain call of a built-in function (unqualified or in
/// `pg_catalog`, no FILTER, OVER, DISTINCT or ORDER BY).
fn plain_arguments(function: &Function) -> Option<Vec<&Expr>> {
    let parts = parts(&function.name);
    if parts.len() > 2 || (parts.len() == 2 && parts[0] != "pg_catalog") {
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
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
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
    match plain_arguments(function)?.as_slice() {
        [value, constant] => Some((value, constant)),
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

/// The refusal of an expression over aggregates the merge does not evaluate.
pub(super) fn refuse_expression(expr: &Expr) -> PlanError {
    unsupported(format!(
        "{expr} cannot be computed after merging the shards' aggregates: over several \
         shards the merge evaluates +, -, *, /, %, casts to numeric, integer and text \
         types, COALESCE(value, literal), round, trunc, abs, ceil and floor over \
         aggregates, group keys and number literals; select the aggregates by themselves \
         and compute the rest in the application, or filter on the shard key to run on \
         one shard"
    ))
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

    /// The expression with each leaf numbered in the order met, and the leaves' texts.
    fn read(sql: &str) -> Result<(ValueExpr, Vec<String>), PlanError> {
        let e = expr(sql);
        let mut leaves = Vec::new();
        let value = value_expr(&e, &mut |leaf| {
            leaves.push(leaf.to_string());
            Ok(ColumnRef::Hidden(leaves.len() - 1))
        })?;
        Ok((value, leaves))
    }

    fn column(i: usize) -> Box<ValueExpr> {
        Box::new(ValueExpr::Column(ColumnRef::Hidden(i)))
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
            assert_eq!(
                read(sql).unwrap().0,
                ValueExpr::Cast(column(0), target),
                "{sql}"
            );
        }
    }

    #[test]
    fn coalesce_with_literals_and_nesting() {
        assert_eq!(
            read("COALESCE(sum(x), 0)").unwrap().0,
            ValueExpr::Coalesce(column(0), Constant::Integer("0".into()))
        );
        assert_eq!(
            read("coalesce((sum(x)), -1.50)::int").unwrap().0,
            ValueExpr::Cast(
                Box::new(ValueExpr::Coalesce(
                    column(0),
                    Constant::Decimal("-1.50".into())
                )),
                CastTarget::Int4
            )
        );
        assert_eq!(
            read("COALESCE(max(name)::text, 'none')").unwrap().0,
            ValueExpr::Coalesce(
                Box::new(ValueExpr::Cast(column(0), CastTarget::Text)),
                Constant::String("none".into())
            )
        );
        assert_eq!(
            read("COALESCE(sum(x), 1e3)").unwrap().0,
            ValueExpr::Coalesce(column(0), Constant::Decimal("1e3".into()))
        );
    }

    #[test]
    fn arithmetic_and_functions_over_aggregates_and_keys() {
        use ArithmeticOp::*;
        let (value, leaves) = read("100.0 * sum(a) / nullif_free(x) - -count(*)").unwrap();
        assert_eq!(leaves, ["sum(a)", "nullif_free(x)", "count(*)"]);
        assert_eq!(
            value,
            ValueExpr::Arithmetic(
                Subtract,
                Box::new(ValueExpr::Arithmetic(
                    Divide,
                    Box::new(ValueExpr::Arithmetic(
                        Multiply,
                        Box::new(ValueExpr::Constant(Constant::Decimal("100.0".into()))),
                        column(0)
                    )),
                    column(1)
                )),
                Box::new(ValueExpr::Negate(column(2)))
            )
        );
        let (value, leaves) = read("round(avg(x), 2) + abs(region % -3)").unwrap();
        assert_eq!(leaves, ["avg(x)", "region"]);
        assert_eq!(
            value,
            ValueExpr::Arithmetic(
                Add,
                Box::new(ValueExpr::Function(
                    NumericFunction::Round,
                    vec![
                        ValueExpr::Column(ColumnRef::Hidden(0)),
                        ValueExpr::Constant(Constant::Integer("2".into()))
                    ]
                )),
                Box::new(ValueExpr::Function(
                    NumericFunction::Abs,
                    vec![ValueExpr::Arithmetic(
                        Modulo,
                        column(1),
                        Box::new(ValueExpr::Constant(Constant::Integer("-3".into())))
                    )]
                ))
            )
        );
        assert!(matches!(
            read("ceiling(sum(x)) + pg_catalog.floor(min(y)) + trunc(max(z))")
                .unwrap()
                .0,
            ValueExpr::Arithmetic(Add, _, _)
        ));
    }

    #[test]
    fn output_names_follow_postgres() {
        for (sql, name) in [
            ("count(*)", "count"),
            ("count(*)::int", "count"),
            ("(sum(a))", "sum"),
            ("sum(a) / sum(b)", "?column?"),
            ("(sum(a) / sum(b))::numeric(10,2)", "numeric"),
            ("(sum(a) - 1)::int", "int4"),
            ("(-sum(a))::float", "float8"),
            ("round(avg(x), 2)", "round"),
            ("ceil(avg(x))", "ceil"),
            ("floor(avg(x))", "floor"),
            ("COALESCE(sum(x), 0)", "coalesce"),
            ("-count(*)", "?column?"),
            ("t.region", "region"),
        ] {
            assert_eq!(output_name(&expr(sql)), name, "{sql}");
        }
    }

    #[test]
    fn what_the_merge_cannot_evaluate_is_refused() {
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
            "sum(x) || 'a'",
            "CASE WHEN count(*) > 0 THEN 1 END",
            "greatest(sum(x), 0)",
            "sum(x) + $1",
            "round(sum(x), 1, 2)",
            "app.round(sum(x))",
            "sqrt(sum(x))",
            "count(*) > 1",
        ] {
            let error = read(sql).unwrap_err();
            assert_eq!(error.sqlstate(), "0A000", "{sql}");
        }
    }
}
