//! HAVING of a fan-out query, evaluated by the merge over merged groups.

use super::super::error::{unsupported, PlanError};
use super::super::spec::{ColumnRef, CompareOp, Predicate};
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

/// Reads a HAVING condition; `column` maps an aggregate or group key to its column.
pub(super) fn predicate(
    expr: &Expr,
    column: &mut impl FnMut(&Expr) -> Result<ColumnRef, PlanError>,
) -> Result<Predicate, PlanError> {
    match expr {
        Expr::Nested(inner) => predicate(inner, column),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        } => Ok(Predicate::Not(Box::new(predicate(inner, column)?))),
        Expr::IsNull(inner) => Ok(Predicate::IsNull {
            column: column(inner)?,
            negated: false,
        }),
        Expr::IsNotNull(inner) => Ok(Predicate::IsNull {
            column: column(inner)?,
            negated: true,
        }),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Ok(Predicate::And(
                Box::new(predicate(left, column)?),
                Box::new(predicate(right, column)?),
            )),
            BinaryOperator::Or => Ok(Predicate::Or(
                Box::new(predicate(left, column)?),
                Box::new(predicate(right, column)?),
            )),
            _ => {
                let op = compare_op(op).ok_or_else(|| refuse(expr))?;
                if let Some(value) = constant(right) {
                    Ok(Predicate::Compare {
                        column: column(left)?,
                        op,
                        value,
                    })
                } else if let Some(value) = constant(left) {
                    Ok(Predicate::Compare {
                        column: column(right)?,
                        op: flipped(op),
                        value,
                    })
                } else {
                    Err(refuse(expr))
                }
            }
        },
        _ => Err(refuse(expr)),
    }
}

fn refuse(expr: &Expr) -> PlanError {
    unsupported(format!(
        "HAVING over several shards can only compare aggregates or group keys with constants (and combine those with AND, OR, NOT, IS NULL), not {expr}; filter on the shard key to run on one shard"
    ))
}

fn compare_op(op: &BinaryOperator) -> Option<CompareOp> {
    Some(match op {
        BinaryOperator::Eq => CompareOp::Eq,
        BinaryOperator::NotEq => CompareOp::NotEq,
        BinaryOperator::Lt => CompareOp::Lt,
        BinaryOperator::LtEq => CompareOp::LtEq,
        BinaryOperator::Gt => CompareOp::Gt,
        BinaryOperator::GtEq => CompareOp::GtEq,
        _ => return None,
    })
}

/// `5 < x` is `x > 5`.
fn flipped(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::LtEq => CompareOp::GtEq,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::GtEq => CompareOp::LtEq,
        other => other,
    }
}

/// A constant's text as PostgreSQL reads it; `Some(None)` for NULL.
fn constant(expr: &Expr) -> Option<Option<String>> {
    match expr {
        Expr::Nested(inner) => constant(inner),
        Expr::Value(value) => match &value.value {
            Value::Null => Some(None),
            Value::Number(digits, _) => Some(Some(digits.clone())),
            Value::Boolean(b) => Some(Some(b.to_string())),
            Value::SingleQuotedString(text)
            | Value::EscapedStringLiteral(text)
            | Value::UnicodeStringLiteral(text) => Some(Some(text.clone())),
            Value::DollarQuotedString(dollar) => Some(Some(dollar.value.clone())),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match constant(inner)? {
            Some(text) if text.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
                Some(Some(format!("-{text}")))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn read(sql: &str) -> Result<Predicate, PlanError> {
        let expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        predicate(&expr, &mut |e: &Expr| match e.to_string().as_str() {
            "count(*)" => Ok(ColumnRef::Visible(1)),
            "name" => Ok(ColumnRef::Visible(0)),
            _ => Err(unsupported("no")),
        })
    }

    #[test]
    fn comparisons_with_constants() {
        assert_eq!(
            read("count(*) > 5"),
            Ok(Predicate::Compare {
                column: ColumnRef::Visible(1),
                op: CompareOp::Gt,
                value: Some("5".into())
            })
        );
        assert_eq!(
            read("-2.5 <= count(*)"),
            Ok(Predicate::Compare {
                column: ColumnRef::Visible(1),
                op: CompareOp::GtEq,
                value: Some("-2.5".into())
            })
        );
        assert_eq!(
            read("NOT (name = 'x' OR name IS NOT NULL) AND count(*) <> NULL"),
            Ok(Predicate::And(
                Box::new(Predicate::Not(Box::new(Predicate::Or(
                    Box::new(Predicate::Compare {
                        column: ColumnRef::Visible(0),
                        op: CompareOp::Eq,
                        value: Some("x".into())
                    }),
                    Box::new(Predicate::IsNull {
                        column: ColumnRef::Visible(0),
                        negated: true
                    })
                )))),
                Box::new(Predicate::Compare {
                    column: ColumnRef::Visible(1),
                    op: CompareOp::NotEq,
                    value: None
                })
            ))
        );
    }

    #[test]
    fn refuses_the_rest() {
        for sql in [
            "count(*) > $1",
            "count(*) + 1 > 5",
            "count(*) > name",
            "other > 1",
        ] {
            assert_eq!(read(sql).unwrap_err().sqlstate(), "0A000", "{sql}");
        }
    }
}
