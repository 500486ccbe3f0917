//! Columns the merge computes from a merged group's combined values
//! ([`ComputedColumn`]): the plan's [`ValueExpr`] typed once from the shards'
//! RowDescription, as PostgreSQL types it, then evaluated for every group.

use bytes::Bytes;
use pgshard_router::plan::{Constant, ValueExpr};

use super::arithmetic::{call, function_types, negate, operate, operator_type};
use super::cast::{coalesce, conversion, number_literal, Convert, SqlType};
use super::datetime::bad;
use super::error::MergeError;
use super::order::resolve;
use super::row::Row;

/// A typed expression, ready to evaluate on rows.
#[derive(Debug, Clone)]
pub struct Computation {
    root: Node,
    output: SqlType,
}

/// One typed operation; values are text, `None` is NULL.
#[derive(Debug, Clone)]
enum Node {
    /// A row index.
    Column(usize),
    Constant(Option<String>),
    /// A cast, or the implicit conversion of an operand to its operator's type.
    Convert {
        input: Box<Node>,
        from: SqlType,
        to: SqlType,
        convert: Convert,
    },
    /// COALESCE: the value converted, or the constant (already converted) for a NULL.
    Coalesce {
        input: Box<Node>,
        from: SqlType,
        to: SqlType,
        convert: Convert,
        constant: Option<String>,
    },
    Negate {
        input: Box<Node>,
        ty: SqlType,
    },
    Arithmetic {
        op: pgshard_router::plan::ArithmeticOp,
        left: Box<Node>,
        right: Box<Node>,
        ty: SqlType,
    },
    Function {
        f: pgshard_router::plan::NumericFunction,
        args: Vec<Node>,
        types: Vec<SqlType>,
    },
}

impl Computation {
    /// Types `expr` for rows whose columns have `types` (the client sees the first
    /// `visible`). Fails as PostgreSQL would fail to plan the expression (no such cast,
    /// operator or function), or as unsupported where the merge cannot be exact.
    pub fn new(
        expr: &ValueExpr,
        visible: usize,
        types: &[SqlType],
    ) -> Result<Computation, MergeError> {
        let (root, output) = typed(expr, visible, types)?;
        Ok(Computation { root, output })
    }

    /// The type of the result column.
    pub fn output(&self) -> SqlType {
        self.output
    }

    /// The value for `row` (as it was before any column was computed).
    pub fn evaluate(&self, row: &Row) -> Result<Option<Bytes>, MergeError> {
        Ok(self.root.evaluate(row)?.map(Bytes::from))
    }
}

/// `node` converted from `from` to `to`, if the types differ.
fn converted(node: Node, from: SqlType, to: SqlType) -> Result<Node, MergeError> {
    if from == to {
        return Ok(node);
    }
    Ok(Node::Convert {
        input: Box::new(node),
        from,
        to,
        convert: conversion(from, to)?,
    })
}

fn typed(
    expr: &ValueExpr,
    visible: usize,
    types: &[SqlType],
) -> Result<(Node, SqlType), MergeError> {
    Ok(match expr {
        ValueExpr::Column(column) => {
            let index = resolve(*column, visible);
            let ty = *types.get(index).ok_or(MergeError::Mismatch)?;
            (Node::Column(index), ty)
        }
        ValueExpr::Constant(constant) => {
            let (ty, text) = match constant {
                Constant::Integer(text) => number_literal(text, false)?,
                Constant::Decimal(text) => number_literal(text, true)?,
                _ => {
                    return Err(MergeError::Unsupported(
                        "over several shards, only number literals are computed with \
                         merged aggregates; write the constant as a number"
                            .to_string(),
                    ))
                }
            };
            (Node::Constant(Some(text)), ty)
        }
        ValueExpr::Cast(inner, target) => {
            let (node, from) = typed(inner, visible, types)?;
            let to = SqlType::of_target(*target);
            let node = if from.oid == to.oid && to.typmod == -1 {
                node
            } else {
                Node::Convert {
                    input: Box::new(node),
                    from,
                    to,
                    convert: conversion(from, to)?,
                }
            };
            (node, to)
        }
        ValueExpr::Coalesce(inner, constant) => {
            let (node, from) = typed(inner, visible, types)?;
            let step = coalesce(from, constant)?;
            let to = step.to;
            (
                Node::Coalesce {
                    input: Box::new(node),
                    from,
                    to,
                    convert: step.convert,
                    constant: step.constant,
                },
                to,
            )
        }
        ValueExpr::Negate(inner) => {
            let (node, ty) = typed(inner, visible, types)?;
            let ty = SqlType { typmod: -1, ..ty };
            (
                Node::Negate {
                    input: Box::new(node),
                    ty,
                },
                ty,
            )
        }
        ValueExpr::Arithmetic(op, left, right) => {
            let (left, left_type) = typed(left, visible, types)?;
            let (right, right_type) = typed(right, visible, types)?;
            let ty = operator_type(*op, left_type, right_type)?;
            (
                Node::Arithmetic {
                    op: *op,
                    left: Box::new(converted(left, left_type, ty)?),
                    right: Box::new(converted(right, right_type, ty)?),
                    ty,
                },
                ty,
            )
        }
        ValueExpr::Function(f, args) => {
            let mut nodes = Vec::with_capacity(args.len());
            let mut arg_types = Vec::with_capacity(args.len());
            for arg in args {
                let (node, ty) = typed(arg, visible, types)?;
                nodes.push(node);
                arg_types.push(ty);
            }
            let (wanted, output) = function_types(*f, &arg_types)?;
            let args = nodes
                .into_iter()
                .zip(arg_types.iter().zip(&wanted))
                .map(|(node, (from, to))| converted(node, *from, *to))
                .collect::<Result<_, _>>()?;
            (
                Node::Function {
                    f: *f,
                    args,
                    types: wanted,
                },
                output,
            )
        }
    })
}

impl Node {
    fn evaluate(&self, row: &Row) -> Result<Option<String>, MergeError> {
        Ok(match self {
            Node::Column(index) => match row.values.get(*index).ok_or(MergeError::Mismatch)? {
                None => None,
                Some(bytes) => Some(
                    std::str::from_utf8(bytes)
                        .map_err(|_| bad("value of a merged aggregate", "(not UTF-8)"))?
                        .to_string(),
                ),
            },
            Node::Constant(value) => value.clone(),
            Node::Convert {
                input,
                from,
                to,
                convert,
            } => match input.evaluate(row)? {
                Some(text) => Some(convert(&text, *from, *to)?),
                None => None,
            },
            Node::Coalesce {
                input,
                from,
                to,
                convert,
                constant,
            } => match input.evaluate(row)? {
                Some(text) => Some(convert(&text, *from, *to)?),
                None => constant.clone(),
            },
            Node::Negate { input, ty } => match input.evaluate(row)? {
                Some(text) => Some(negate(*ty, &text)?),
                None => None,
            },
            // Operators and functions are strict: a NULL operand makes the result NULL.
            Node::Arithmetic {
                op,
                left,
                right,
                ty,
            } => match (left.evaluate(row)?, right.evaluate(row)?) {
                (Some(a), Some(b)) => Some(operate(*op, *ty, &a, &b)?),
                _ => None,
            },
            Node::Function { f, args, types } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    match arg.evaluate(row)? {
                        Some(v) => values.push(v),
                        None => return Ok(None),
                    }
                }
                Some(call(*f, types, &values)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::cast::oid;
    use super::*;
    use pgshard_router::plan::{ArithmeticOp, ColumnRef, NumericFunction};

    fn column(i: usize) -> Box<ValueExpr> {
        Box::new(ValueExpr::Column(ColumnRef::Visible(i)))
    }

    fn int(text: &str) -> Box<ValueExpr> {
        Box::new(ValueExpr::Constant(Constant::Integer(text.into())))
    }

    fn row(values: &[Option<&str>]) -> Row {
        Row {
            values: values
                .iter()
                .map(|v| v.map(|s| Bytes::from(s.to_string())))
                .collect(),
        }
    }

    fn text(value: Option<Bytes>) -> Option<String> {
        value.map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    const INT8: SqlType = SqlType::plain(oid::INT8);
    const NUMERIC: SqlType = SqlType::plain(oid::NUMERIC);

    #[test]
    fn ratio_of_sums_and_percentages() {
        // sum(a) / sum(b) over bigint sums: integer division.
        let ratio = ValueExpr::Arithmetic(ArithmeticOp::Divide, column(0), column(1));
        let c = Computation::new(&ratio, 2, &[INT8, INT8]).unwrap();
        assert_eq!(c.output(), INT8);
        assert_eq!(
            text(c.evaluate(&row(&[Some("7"), Some("2")])).unwrap()),
            Some("3".into())
        );
        assert_eq!(text(c.evaluate(&row(&[None, Some("2")])).unwrap()), None);
        // 100.0 * count(*) / sum(n): numeric.
        let percent = ValueExpr::Arithmetic(
            ArithmeticOp::Divide,
            Box::new(ValueExpr::Arithmetic(
                ArithmeticOp::Multiply,
                Box::new(ValueExpr::Constant(Constant::Decimal("100.0".into()))),
                column(0),
            )),
            column(1),
        );
        let c = Computation::new(&percent, 2, &[INT8, NUMERIC]).unwrap();
        assert_eq!(c.output(), NUMERIC);
        assert_eq!(
            text(c.evaluate(&row(&[Some("1"), Some("3")])).unwrap()),
            Some("33.3333333333333333".into())
        );
        let zero = c.evaluate(&row(&[Some("1"), Some("0")])).unwrap_err();
        assert_eq!(zero.sqlstate(), "22012");
    }

    #[test]
    fn round_of_an_average_and_coalesce_of_arithmetic() {
        let round = ValueExpr::Function(
            NumericFunction::Round,
            vec![ValueExpr::Column(ColumnRef::Visible(0)), *int("2")],
        );
        let c = Computation::new(&round, 1, &[NUMERIC]).unwrap();
        assert_eq!(
            text(c.evaluate(&row(&[Some("2.6666666666666667")])).unwrap()),
            Some("2.67".into())
        );
        let coalesced = ValueExpr::Coalesce(
            Box::new(ValueExpr::Arithmetic(
                ArithmeticOp::Add,
                column(0),
                int("1"),
            )),
            Constant::Integer("0".into()),
        );
        let c = Computation::new(&coalesced, 1, &[INT8]).unwrap();
        assert_eq!(c.output(), INT8);
        assert_eq!(text(c.evaluate(&row(&[None])).unwrap()), Some("0".into()));
        assert_eq!(
            text(c.evaluate(&row(&[Some("4")])).unwrap()),
            Some("5".into())
        );
    }

    #[test]
    fn text_literals_in_arithmetic_are_refused() {
        let expr = ValueExpr::Arithmetic(
            ArithmeticOp::Add,
            column(0),
            Box::new(ValueExpr::Constant(Constant::String("1".into()))),
        );
        let error = Computation::new(&expr, 1, &[INT8]).unwrap_err();
        assert_eq!(error.sqlstate(), "0A000");
    }
}
