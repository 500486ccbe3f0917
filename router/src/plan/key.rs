//! Shard keys a statement names, as literals or parameters, and the shards they
//! select once the parameters are known.

use super::array_param::array_elements;
use super::error::PlanError;
use super::input::BoundParams;
use crate::sharding::literal::target_type;
use crate::sharding::{KeyType, KeyValue, ShardingError, ShardingFunction};
use sqlparser::ast::{Expr, Value};
use std::collections::BTreeSet;

/// Where a key value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// A constant in the text, already read as the key's type.
    Literal(KeyValue),
    /// Bind parameter `$n + 1` (0-based index).
    Param(usize),
}

/// What a condition says about the keys of the rows it lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyCond {
    /// The key is one of these (`key = v`, `key IN (…)`); NULL values match nothing.
    Values(Vec<KeySource>),
    /// Every condition holds.
    And(Vec<KeyCond>),
    /// One of the conditions holds.
    Or(Vec<KeyCond>),
    /// `key = ANY ($n)`: the key is an element of array parameter `$n + 1`.
    AnyOf(usize),
}

/// The 0-based index of a `$n` placeholder.
pub(crate) fn placeholder_index(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Placeholder(text) => text
                .strip_prefix('$')?
                .parse::<usize>()
                .ok()?
                .checked_sub(1),
            _ => None,
        },
        _ => None,
    }
}

impl KeySource {
    /// The key `expr` stands for when compared with a key of `key_type`: `Ok(None)`
    /// when it is no constant (an expression, a column), an error for a constant the
    /// key type cannot read (as the server would fail the statement too).
    pub fn from_expr(key_type: KeyType, expr: &Expr) -> Result<Option<KeySource>, ShardingError> {
        match expr {
            Expr::Nested(inner) => return KeySource::from_expr(key_type, inner),
            Expr::Cast {
                expr: inner,
                data_type,
                format: None,
                ..
            } if placeholder_index(inner).is_some() => {
                return Ok(target_type(key_type, data_type)
                    .and(placeholder_index(inner))
                    .map(KeySource::Param));
            }
            _ => {}
        }
        if let Some(index) = placeholder_index(expr) {
            return Ok(Some(KeySource::Param(index)));
        }
        match KeyValue::from_sql(key_type, expr) {
            Ok(value) => Ok(Some(KeySource::Literal(value))),
            Err(ShardingError::NotAConstant { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The value, reading a parameter from `params`; `None` when it is a parameter and
    /// no parameters were bound.
    pub fn value(
        &self,
        key_type: KeyType,
        params: Option<&BoundParams>,
    ) -> Result<Option<KeyValue>, PlanError> {
        match self {
            KeySource::Literal(value) => Ok(Some(value.clone())),
            KeySource::Param(index) => {
                let Some(params) = params else {
                    return Ok(None);
                };
                let (format, bytes) = params.get(*index)?;
                Ok(Some(KeyValue::from_parameter(key_type, format, bytes)?))
            }
        }
    }
}

/// Shards as a set, for conditions.
pub(crate) type ShardSet = BTreeSet<usize>;

/// How keys are mapped to shards.
#[derive(Clone, Copy)]
pub(crate) struct KeySpace<'a> {
    pub key_type: KeyType,
    pub function: &'a ShardingFunction,
    pub shards: usize,
}

impl KeySpace<'_> {
    /// The shard of a key value.
    pub fn shard_of(&self, value: &KeyValue) -> Result<usize, PlanError> {
        Ok(self.function.shard_of(value, self.shards)?)
    }
}

impl KeyCond {
    /// Whether some key is a parameter.
    pub fn has_params(&self) -> bool {
        match self {
            KeyCond::Values(sources) => sources.iter().any(|s| matches!(s, KeySource::Param(_))),
            KeyCond::And(conds) | KeyCond::Or(conds) => conds.iter().any(KeyCond::has_params),
            KeyCond::AnyOf(_) => true,
        }
    }

    /// The shards holding every row the condition lets through; `None` when that is
    /// unknown (a parameter and no parameters bound).
    pub fn shards(
        &self,
        space: KeySpace,
        params: Option<&BoundParams>,
    ) -> Result<Option<ShardSet>, PlanError> {
        match self {
            KeyCond::Values(sources) => {
                let mut set = ShardSet::new();
                for source in sources {
                    match source.value(space.key_type, params)? {
                        None => return Ok(None),
                        // `key = NULL` is never true.
                        Some(KeyValue::Null) => {}
                        Some(value) => {
                            set.insert(space.shard_of(&value)?);
                        }
                    }
                }
                Ok(Some(set))
            }
            KeyCond::And(conds) => {
                let mut result: Option<ShardSet> = None;
                for cond in conds {
                    if let Some(set) = cond.shards(space, params)? {
                        result = Some(match result {
                            None => set,
                            Some(acc) => acc.intersection(&set).copied().collect(),
                        });
                    }
                }
                Ok(result)
            }
            KeyCond::AnyOf(index) => {
                let Some(params) = params else {
                    return Ok(None);
                };
                let (format, bytes) = params.get(*index)?;
                // `key = ANY (NULL)` is never true.
                let Some(bytes) = bytes else {
                    return Ok(Some(ShardSet::new()));
                };
                let Some(elements) = array_elements(format, bytes) else {
                    return Ok(None);
                };
                let mut set = ShardSet::new();
                for element in elements {
                    match KeyValue::from_parameter(space.key_type, format, element.as_deref())? {
                        KeyValue::Null => {}
                        value => {
                            set.insert(space.shard_of(&value)?);
                        }
                    }
                }
                Ok(Some(set))
            }
            KeyCond::Or(conds) => {
                let mut result = ShardSet::new();
                for cond in conds {
                    match cond.shards(space, params)? {
                        None => return Ok(None),
                        Some(set) => result.extend(set),
                    }
                }
                Ok(Some(result))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharding::{hash_partition, ParamFormat};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn expr(sql: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn sources() {
        let source = |sql| KeySource::from_expr(KeyType::Int8, &expr(sql));
        assert_eq!(source("$2"), Ok(Some(KeySource::Param(1))));
        assert_eq!(source("($1::int8)"), Ok(Some(KeySource::Param(0))));
        assert_eq!(source("$1::text"), Ok(None));
        assert_eq!(
            source("'5'::bigint"),
            Ok(Some(KeySource::Literal(KeyValue::Int(5))))
        );
        assert_eq!(source("a + 1"), Ok(None));
        assert!(source("'x'").is_err());
    }

    #[test]
    fn conditions_map_to_shard_sets() {
        let function = ShardingFunction::Hash;
        let space = KeySpace {
            key_type: KeyType::Int8,
            function: &function,
            shards: 3,
        };
        let shard = |n| hash_partition(&KeyValue::Int(n), 3);
        let lit = |n| KeySource::Literal(KeyValue::Int(n));
        let values = [Some(&b"7"[..])];
        let formats = [ParamFormat::Text];
        let params = BoundParams {
            values: &values,
            formats: &formats,
        };
        let cond = KeyCond::Or(vec![
            KeyCond::Values(vec![lit(1)]),
            KeyCond::Values(vec![
                KeySource::Param(0),
                KeySource::Literal(KeyValue::Null),
            ]),
        ]);
        assert_eq!(
            cond.shards(space, Some(&params)),
            Ok(Some([shard(1), shard(7)].into()))
        );
        assert_eq!(cond.shards(space, None), Ok(None));
        let cond = KeyCond::And(vec![
            KeyCond::Values(vec![lit(1), lit(2)]),
            KeyCond::Values(vec![lit(1)]),
        ]);
        assert_eq!(cond.shards(space, None), Ok(Some([shard(1)].into())));
    }
}
