//! LIMIT and OFFSET of a fan-out query: applied by the merge, and pushed down to the
//! shards as `LIMIT limit + offset` when no grouping happens after them.

use super::super::error::{unsupported, PlanError};
use super::super::key::placeholder_index;
use super::super::template::RowCount;
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, LimitClause, Query, UnaryOperator, Value,
};

/// A query's row limits.
#[derive(Debug, Default)]
pub(super) struct Limits {
    pub limit: Option<RowCount>,
    pub offset: Option<RowCount>,
    limit_expr: Option<Expr>,
    offset_expr: Option<Expr>,
}

impl Limits {
    /// Reads LIMIT, OFFSET and FETCH FIRST.
    pub fn read(query: &Query) -> Result<Limits, PlanError> {
        let mut limits = Limits::default();
        match &query.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(unsupported("LIMIT BY is not PostgreSQL"));
                }
                if let Some(limit) = limit {
                    limits.limit = count(limit)?;
                    limits.limit_expr = Some(limit.clone());
                }
                if let Some(offset) = offset {
                    limits.offset = count(&offset.value)?;
                    limits.offset_expr = Some(offset.value.clone());
                }
            }
            Some(LimitClause::OffsetCommaLimit { .. }) => {
                return Err(unsupported("LIMIT offset, count is not PostgreSQL"));
            }
        }
        if let Some(fetch) = &query.fetch {
            if fetch.with_ties || fetch.percent || limits.limit_expr.is_some() {
                return Err(unsupported(
                    "FETCH FIRST … WITH TIES over several shards is not supported; use LIMIT",
                ));
            }
            let quantity = fetch
                .quantity
                .clone()
                .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
            limits.limit = count(&quantity)?;
            limits.limit_expr = Some(quantity);
        }
        Ok(limits)
    }

    /// The LIMIT the shards get when rows are not grouped after them: enough rows
    /// for the merge to skip the offset and fill the limit.
    pub fn pushed_down(&self) -> Option<LimitClause> {
        let limit = self.limit_expr.clone()?;
        let limit = match (&self.offset_expr, self.limit, self.offset) {
            (None, _, _) => limit,
            (Some(_), Some(RowCount::Value(n)), Some(RowCount::Value(m))) => {
                Expr::value(Value::Number(n.saturating_add(m).to_string(), false))
            }
            (Some(offset), _, _) => Expr::BinaryOp {
                left: Box::new(bigint(limit)),
                op: BinaryOperator::Plus,
                right: Box::new(bigint(offset.clone())),
            },
        };
        Some(LimitClause::LimitOffset {
            limit: Some(limit),
            offset: None,
            limit_by: Vec::new(),
        })
    }
}

fn bigint(expr: Expr) -> Expr {
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(Expr::Nested(Box::new(expr))),
        data_type: DataType::BigInt(None),
        format: None,
    }
}

/// A row count written as a constant or a parameter; `None` for NULL (no limit).
fn count(expr: &Expr) -> Result<Option<RowCount>, PlanError> {
    let refuse = || {
        unsupported(format!(
            "LIMIT and OFFSET of a query spanning several shards must be constants or parameters, not {expr}"
        ))
    };
    match expr {
        Expr::Nested(inner) => count(inner),
        Expr::Cast { expr: inner, .. } if placeholder_index(inner).is_some() => {
            Ok(placeholder_index(inner).map(RowCount::Param))
        }
        Expr::Value(value) => match &value.value {
            Value::Null => Ok(None),
            Value::Number(digits, false) => digits
                .parse::<i64>()
                .map(|n| Some(RowCount::Value(n)))
                .map_err(|_| refuse()),
            Value::Placeholder(_) => placeholder_index(expr)
                .map(|i| Some(RowCount::Param(i)))
                .ok_or_else(refuse),
            _ => Err(refuse()),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match count(inner)? {
            Some(RowCount::Value(n)) => Ok(Some(RowCount::Value(-n))),
            _ => Err(refuse()),
        },
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Statement;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn limits(sql: &str) -> Result<Limits, PlanError> {
        let Statement::Query(query) = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
        else {
            panic!()
        };
        Limits::read(&query)
    }

    fn pushed(sql: &str) -> Option<String> {
        limits(sql).unwrap().pushed_down().map(|l| l.to_string())
    }

    #[test]
    fn reads_and_pushes_down() {
        let l = limits("SELECT 1 LIMIT 10 OFFSET 5").unwrap();
        assert_eq!(
            (l.limit, l.offset),
            (Some(RowCount::Value(10)), Some(RowCount::Value(5)))
        );
        assert_eq!(
            pushed("SELECT 1 LIMIT 10 OFFSET 5").as_deref(),
            Some(" LIMIT 15")
        );
        assert_eq!(pushed("SELECT 1 LIMIT 10").as_deref(), Some(" LIMIT 10"));
        assert_eq!(pushed("SELECT 1 OFFSET 10"), None);
        assert_eq!(pushed("SELECT 1 LIMIT ALL"), None);
        assert_eq!(
            pushed("SELECT 1 LIMIT $1 OFFSET $2").as_deref(),
            Some(" LIMIT ($1)::BIGINT + ($2)::BIGINT")
        );
        let l = limits("SELECT 1 FETCH FIRST 3 ROWS ONLY").unwrap();
        assert_eq!(l.limit, Some(RowCount::Value(3)));
        assert_eq!(limits("SELECT 1 LIMIT NULL").unwrap().limit, None);
        assert!(limits("SELECT 1 LIMIT 1 + 1").is_err());
        assert!(limits("SELECT 1 FETCH FIRST 3 ROWS WITH TIES").is_err());
    }
}
