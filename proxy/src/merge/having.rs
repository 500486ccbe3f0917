//! HAVING conditions evaluated on merged groups, with SQL's three-valued logic.

use std::cmp::Ordering;

use pgshard_router::plan::{CompareOp, Predicate};

use super::order::resolve;

use super::compare::{compare, NumericValue};
use super::error::MergeError;
use super::row::Row;
use super::value_type::ValueType;

/// Whether `row` passes `predicate`: `Some(true)` keeps it; false and NULL drop it.
pub fn evaluate(
    predicate: &Predicate,
    row: &Row,
    types: &[ValueType],
    visible: usize,
) -> Result<Option<bool>, MergeError> {
    let value = |column| -> Result<(ValueType, Option<&[u8]>), MergeError> {
        let column = resolve(column, visible);
        let ty = types.get(column).copied().ok_or(MergeError::Mismatch)?;
        let value = row.values.get(column).ok_or(MergeError::Mismatch)?;
        Ok((ty, value.as_deref()))
    };
    Ok(match predicate {
        Predicate::Compare {
            column,
            op,
            value: constant,
        } => {
            let (ty, v) = value(*column)?;
            match (v, constant) {
                (Some(v), Some(c)) => Some(holds(*op, compare_constant(ty, v, c)?)),
                _ => None,
            }
        }
        Predicate::IsNull { column, negated } => Some(value(*column)?.1.is_none() != *negated),
        Predicate::And(a, b) => match (
            evaluate(a, row, types, visible)?,
            evaluate(b, row, types, visible)?,
        ) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Predicate::Or(a, b) => match (
            evaluate(a, row, types, visible)?,
            evaluate(b, row, types, visible)?,
        ) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Predicate::Not(a) => evaluate(a, row, types, visible)?.map(|b| !b),
    })
}

fn holds(op: CompareOp, order: Ordering) -> bool {
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::NotEq => order != Ordering::Equal,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::LtEq => order != Ordering::Greater,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::GtEq => order != Ordering::Less,
    }
}

/// Compares a column value with a constant; numbers compare by value whatever their
/// spelling (`count(*) > 2.5`).
fn compare_constant(ty: ValueType, value: &[u8], constant: &str) -> Result<Ordering, MergeError> {
    match ty {
        ValueType::Int { .. } | ValueType::Numeric | ValueType::Float { .. } => {
            let parse = |t: &str| match t {
                "NaN" | "Infinity" | "-Infinity" => NumericValue::parse(t),
                _ => NumericValue::parse(t.trim()),
            };
            let v = std::str::from_utf8(value).map_err(|_| MergeError::Mismatch)?;
            Ok(parse(v)?.cmp(&parse(constant)?))
        }
        _ => compare(ty, value, constant.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pgshard_router::plan::ColumnRef;

    fn cmp(column: usize, op: CompareOp, value: &str) -> Predicate {
        Predicate::Compare {
            column: ColumnRef::Visible(column),
            op,
            value: Some(value.to_string()),
        }
    }

    #[test]
    fn comparisons_and_logic() {
        let row = Row {
            values: vec![Some(Bytes::from("a")), Some(Bytes::from("12")), None],
        };
        let types = [
            ValueType::Text,
            ValueType::from_oid(20),
            ValueType::from_oid(1700),
        ];
        let check = |p: &Predicate| evaluate(p, &row, &types, 3).unwrap();
        assert_eq!(check(&cmp(1, CompareOp::Gt, "9")), Some(true));
        assert_eq!(check(&cmp(1, CompareOp::Lt, "12.5")), Some(true));
        assert_eq!(check(&cmp(0, CompareOp::Eq, "a")), Some(true));
        assert_eq!(check(&cmp(2, CompareOp::Eq, "1")), None);
        let and = Predicate::And(
            Box::new(cmp(1, CompareOp::Gt, "9")),
            Box::new(cmp(2, CompareOp::Eq, "1")),
        );
        assert_eq!(check(&and), None);
        let or = Predicate::Or(
            Box::new(cmp(1, CompareOp::Gt, "9")),
            Box::new(cmp(2, CompareOp::Eq, "1")),
        );
        assert_eq!(check(&or), Some(true));
        assert_eq!(
            check(&Predicate::IsNull {
                column: ColumnRef::Visible(2),
                negated: false
            }),
            Some(true)
        );
        assert_eq!(
            check(&Predicate::Not(Box::new(cmp(1, CompareOp::Eq, "12")))),
            Some(false)
        );
    }
}
