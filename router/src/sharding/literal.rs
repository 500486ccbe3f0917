//! Shard keys written as constants in SQL text: `42`, `-7`, `'fr'`, `NULL`,
//! `'a0eebc99-…'::uuid`, `CAST('5' AS bigint)`, `uuid '…'`.

use super::integer::parse_integer;
use super::{KeyType, KeyValue, ShardingError};
use sqlparser::ast::{DataType, Expr, UnaryOperator, Value};

impl KeyValue {
    /// Reads the constant `expr` as a key of `key_type`, following PostgreSQL's rules
    /// for comparing the key column with it:
    ///
    /// - a quoted string is read by the key type's input function, errors included
    ///   (`'70000'` for a smallint key is out of range, as on the server);
    /// - an integer literal stands for itself, even outside a narrower key type's
    ///   range (PostgreSQL compares across integer types: no row matches, and any
    ///   shard gives that answer);
    /// - a cast or typed literal (`'5'::int8`, `uuid '…'`) is evaluated when its type
    ///   is of the key's family (integer, text or uuid), with the cast's own range;
    /// - anything else (parameters, expressions, decimals, a number for a text key,
    ///   casts to other types) is [`ShardingError::NotAConstant`]: the key is not
    ///   known from the text alone.
    pub fn from_sql(key_type: KeyType, expr: &Expr) -> Result<KeyValue, ShardingError> {
        let not_a_constant = || ShardingError::NotAConstant {
            key_type,
            expression: expr.to_string(),
        };
        match expr {
            Expr::Nested(inner) => KeyValue::from_sql(key_type, inner),
            Expr::Value(value) => match &value.value {
                Value::Null => Ok(KeyValue::Null),
                Value::Number(digits, false) => number(key_type, digits).ok_or_else(not_a_constant),
                value => match string(value) {
                    Some(text) => KeyValue::from_text(key_type, text),
                    None => Err(not_a_constant()),
                },
            },
            Expr::UnaryOp { op, expr: operand } => {
                let sign = match op {
                    UnaryOperator::Minus => "-",
                    UnaryOperator::Plus => "",
                    _ => return Err(not_a_constant()),
                };
                match operand.as_ref() {
                    Expr::Value(value) => match &value.value {
                        Value::Number(digits, false) => {
                            number(key_type, &format!("{sign}{digits}")).ok_or_else(not_a_constant)
                        }
                        _ => Err(not_a_constant()),
                    },
                    _ => Err(not_a_constant()),
                }
            }
            Expr::Cast {
                expr: inner,
                data_type,
                format: None,
                ..
            } => cast(key_type, data_type, inner).ok_or_else(not_a_constant)?,
            Expr::TypedString(typed) => match string(&typed.value.value) {
                Some(text) => {
                    let target =
                        target_type(key_type, &typed.data_type).ok_or_else(not_a_constant)?;
                    KeyValue::from_text(target, text)
                }
                None => Err(not_a_constant()),
            },
            _ => Err(not_a_constant()),
        }
    }
}

/// A decimal integer literal (with its sign) for an integer key; `None` for other
/// keys, decimals and numbers beyond 64 bits (PostgreSQL makes those `numeric`).
fn number(key_type: KeyType, digits: &str) -> Option<KeyValue> {
    key_type.integer_range()?;
    parse_integer(KeyType::Int8, digits).ok().map(KeyValue::Int)
}

/// The text of a quoted string constant of type `unknown`, which PostgreSQL reads
/// with the compared column's input function. Bit strings (`B'…'`, `X'…'`) and
/// national strings (`N'…'`, of type `char`) are other types.
fn string(value: &Value) -> Option<&str> {
    match value {
        Value::SingleQuotedString(text)
        | Value::EscapedStringLiteral(text)
        | Value::UnicodeStringLiteral(text) => Some(text),
        Value::DollarQuotedString(dollar) => Some(&dollar.value),
        _ => None,
    }
}

/// `inner` cast to `data_type`, if that is a type of `key_type`'s family; `None`
/// when the cast cannot be evaluated here.
fn cast(
    key_type: KeyType,
    data_type: &DataType,
    inner: &Expr,
) -> Option<Result<KeyValue, ShardingError>> {
    let target = target_type(key_type, data_type)?;
    let value = match KeyValue::from_sql(target, inner) {
        Ok(value) => value,
        Err(ShardingError::NotAConstant { .. }) => return None,
        Err(error) => return Some(Err(error)),
    };
    // The cast itself fails on values beyond its type, as on the server.
    if let (KeyValue::Int(int), Some((min, max))) = (&value, target.integer_range()) {
        if !(min..=max).contains(int) {
            return Some(Err(ShardingError::OutOfRange {
                key_type: target,
                text: int.to_string(),
            }));
        }
    }
    Some(Ok(value))
}

/// The key type `data_type` names, if it is of `key_type`'s family. Length-limited
/// text types (`varchar(3)`) are left out: their cast truncates.
pub(crate) fn target_type(key_type: KeyType, data_type: &DataType) -> Option<KeyType> {
    let target = match data_type {
        DataType::SmallInt(None) | DataType::Int2(None) => KeyType::Int2,
        DataType::Int(None) | DataType::Integer(None) | DataType::Int4(None) => KeyType::Int4,
        DataType::BigInt(None) | DataType::Int8(None) => KeyType::Int8,
        DataType::Text | DataType::Varchar(None) | DataType::CharacterVarying(None) => {
            KeyType::Text
        }
        DataType::Uuid => KeyType::Uuid,
        _ => return None,
    };
    let family = |key_type: KeyType| {
        (
            key_type.integer_range().is_some(),
            key_type == KeyType::Uuid,
        )
    };
    (family(target) == family(key_type)).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn key(key_type: KeyType, sql: &str) -> Result<KeyValue, ShardingError> {
        let expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        KeyValue::from_sql(key_type, &expr)
    }

    fn not_a_constant(key_type: KeyType, sql: &str) {
        assert!(
            matches!(key(key_type, sql), Err(ShardingError::NotAConstant { .. })),
            "{sql}: {:?}",
            key(key_type, sql)
        );
    }

    #[test]
    fn integer_keys() {
        assert_eq!(key(KeyType::Int8, "42"), Ok(KeyValue::Int(42)));
        assert_eq!(key(KeyType::Int8, "-42"), Ok(KeyValue::Int(-42)));
        assert_eq!(key(KeyType::Int8, "+42"), Ok(KeyValue::Int(42)));
        assert_eq!(key(KeyType::Int8, "(7)"), Ok(KeyValue::Int(7)));
        assert_eq!(
            key(KeyType::Int8, "-9223372036854775808"),
            Ok(KeyValue::Int(i64::MIN))
        );
        assert_eq!(key(KeyType::Int4, "' 42 '"), Ok(KeyValue::Int(42)));
        assert_eq!(key(KeyType::Int2, "70000"), Ok(KeyValue::Int(70000)));
        assert_eq!(
            key(KeyType::Int2, "'70000'"),
            Err(ShardingError::OutOfRange {
                key_type: KeyType::Int2,
                text: "70000".into()
            })
        );
        assert_eq!(
            key(KeyType::Int8, "'4x'"),
            Err(ShardingError::InvalidText {
                key_type: KeyType::Int8,
                text: "4x".into()
            })
        );
        assert_eq!(key(KeyType::Int8, "NULL"), Ok(KeyValue::Null));
        for sql in [
            "4.0",
            "1e3",
            "9223372036854775808",
            "1 + 1",
            "$1",
            "id",
            "-(1)",
            "true",
        ] {
            not_a_constant(KeyType::Int8, sql);
        }
    }

    #[test]
    fn text_keys() {
        assert_eq!(
            key(KeyType::Text, "'it''s'"),
            Ok(KeyValue::Text("it's".into()))
        );
        assert_eq!(
            key(KeyType::Text, "E'a\\tb'"),
            Ok(KeyValue::Text("a\tb".into()))
        );
        assert_eq!(
            key(KeyType::Text, "$$Zürich$$"),
            Ok(KeyValue::Text("Zürich".into()))
        );
        assert_eq!(key(KeyType::Text, "''"), Ok(KeyValue::Text(String::new())));
        for sql in [
            "42",
            "X'41'",
            "B'01'",
            "N'x'",
            "'a' || 'b'",
            "'abc'::varchar(2)",
        ] {
            not_a_constant(KeyType::Text, sql);
        }
    }

    #[test]
    fn uuid_keys() {
        let expected = KeyValue::from_text(KeyType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        for sql in [
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'A0EEBC999C0B4EF8BB6D6BB9BD380A11'::uuid",
            "CAST('{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}' AS uuid)",
            "uuid 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        ] {
            assert_eq!(key(KeyType::Uuid, sql), expected, "{sql}");
        }
        assert!(matches!(
            key(KeyType::Uuid, "'nope'"),
            Err(ShardingError::InvalidText { .. })
        ));
        not_a_constant(KeyType::Uuid, "gen_random_uuid()");
        not_a_constant(
            KeyType::Uuid,
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::text",
        );
    }

    #[test]
    fn casts_within_the_key_family() {
        assert_eq!(key(KeyType::Int8, "'5'::int4"), Ok(KeyValue::Int(5)));
        assert_eq!(
            key(KeyType::Int8, "CAST(-5 AS smallint)"),
            Ok(KeyValue::Int(-5))
        );
        assert_eq!(key(KeyType::Int8, "NULL::bigint"), Ok(KeyValue::Null));
        assert_eq!(key(KeyType::Int8, "bigint '12'"), Ok(KeyValue::Int(12)));
        assert_eq!(
            key(KeyType::Text, "'x'::text"),
            Ok(KeyValue::Text("x".into()))
        );
        assert_eq!(
            key(KeyType::Text, "'x'::varchar"),
            Ok(KeyValue::Text("x".into()))
        );
        assert_eq!(
            key(KeyType::Int8, "70000::int2"),
            Err(ShardingError::OutOfRange {
                key_type: KeyType::Int2,
                text: "70000".into()
            })
        );
        for sql in ["'5'::text", "5::numeric", "1.5::int8", "'x'::bytea"] {
            not_a_constant(KeyType::Int8, sql);
        }
    }
}
