//! Per-shard aggregate values combined into the one value a single server would have
//! computed: counts and sums added, minima and maxima compared, averages divided once
//! at the end.

use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use bytes::Bytes;
use pgshard_router::plan::AggregateKind;

use super::compare::{compare, parse_float, NumericValue};
use super::datetime::bad;
use super::error::MergeError;
use super::float_text::{float4_text, float8_text};
use super::numeric::numeric_div;
use super::value_type::ValueType;

/// A running sum of per-shard sums, in the arithmetic of the sum's type.
#[derive(Debug, Clone)]
enum Sum {
    None,
    Int(i128),
    Numeric(NumericValue),
    Float(f64),
}

impl Sum {
    fn add(&mut self, ty: ValueType, text: &str) -> Result<(), MergeError> {
        *self = match (std::mem::replace(self, Sum::None), ty) {
            (Sum::None, ValueType::Int { .. }) => Sum::Int(parse_int(text)?),
            (Sum::Int(a), ValueType::Int { .. }) => Sum::Int(a + parse_int(text)?),
            (Sum::None, ValueType::Numeric) => Sum::Numeric(NumericValue::parse(text)?),
            (Sum::Numeric(a), ValueType::Numeric) => {
                Sum::Numeric(add_numeric(a, NumericValue::parse(text)?))
            }
            (Sum::None, ValueType::Float { .. }) => Sum::Float(parse_float(text)?),
            (Sum::Float(a), ValueType::Float { .. }) => Sum::Float(a + parse_float(text)?),
            (_, ty) => {
                return Err(MergeError::Unsupported(format!(
                    "cannot add sums of type {} from several shards",
                    ty.name()
                )))
            }
        };
        Ok(())
    }
}

fn add_numeric(a: NumericValue, b: NumericValue) -> NumericValue {
    use NumericValue::*;
    match (a, b) {
        (NaN, _) | (_, NaN) | (Infinity, NegInfinity) | (NegInfinity, Infinity) => NaN,
        (Infinity, _) | (_, Infinity) => Infinity,
        (NegInfinity, _) | (_, NegInfinity) => NegInfinity,
        (Finite(a), Finite(b)) => Finite(a + b),
    }
}

fn numeric_text(v: &NumericValue) -> String {
    match v {
        NumericValue::NaN => "NaN".to_string(),
        NumericValue::Infinity => "Infinity".to_string(),
        NumericValue::NegInfinity => "-Infinity".to_string(),
        NumericValue::Finite(d) => d.to_plain_string(),
    }
}

fn parse_int(text: &str) -> Result<i128, MergeError> {
    text.parse().map_err(|_| bad("bigint", text))
}

/// One aggregate's combined value so far.
#[derive(Debug, Clone)]
pub struct Accumulator {
    kind: AggregateKind,
    /// The type of the column the shards send (for avg: of its sum).
    ty: ValueType,
    count: i128,
    sum: Sum,
    best: Option<Bytes>,
    flag: Option<bool>,
}

impl Accumulator {
    pub fn new(kind: AggregateKind, ty: ValueType) -> Accumulator {
        Accumulator {
            kind,
            ty,
            count: 0,
            sum: Sum::None,
            best: None,
            flag: None,
        }
    }

    /// Takes one shard's value of the aggregate (`count` is that shard's count(x), for
    /// avg only).
    pub fn add(&mut self, value: Option<&[u8]>, count: Option<&[u8]>) -> Result<(), MergeError> {
        let text = |v: &[u8]| -> Result<String, MergeError> {
            String::from_utf8(v.to_vec()).map_err(|_| bad(self.ty.name(), "(not UTF-8)"))
        };
        match self.kind {
            AggregateKind::Count => {
                if let Some(v) = value {
                    self.count += parse_int(&text(v)?)?;
                }
            }
            AggregateKind::Sum => {
                if let Some(v) = value {
                    let t = text(v)?;
                    self.sum.add(self.ty, &t)?;
                }
            }
            AggregateKind::Avg { .. } => {
                if let Some(v) = value {
                    let t = text(v)?;
                    self.sum.add(self.ty, &t)?;
                }
                if let Some(c) = count {
                    self.count += parse_int(&text(c)?)?;
                }
            }
            AggregateKind::Min | AggregateKind::Max => {
                if let Some(v) = value {
                    let keep_new = match &self.best {
                        None => true,
                        Some(best) => {
                            let order = compare(self.ty, v, best)?;
                            if self.kind == AggregateKind::Min {
                                order == Ordering::Less
                            } else {
                                order == Ordering::Greater
                            }
                        }
                    };
                    if keep_new {
                        self.best = Some(Bytes::copy_from_slice(v));
                    }
                }
            }
            AggregateKind::BoolAnd | AggregateKind::BoolOr => {
                if let Some(v) = value {
                    let b = v == b"t";
                    self.flag = Some(match (self.flag, self.kind) {
                        (None, _) => b,
                        (Some(a), AggregateKind::BoolAnd) => a && b,
                        (Some(a), _) => a || b,
                    });
                }
            }
        }
        Ok(())
    }

    /// The combined value, in text format.
    pub fn finish(&self) -> Result<Option<Bytes>, MergeError> {
        let text = match self.kind {
            AggregateKind::Count => Some(self.count.to_string()),
            AggregateKind::Sum => match &self.sum {
                Sum::None => None,
                Sum::Int(v) => Some(v.to_string()),
                Sum::Numeric(v) => Some(numeric_text(v)),
                Sum::Float(v) => Some(self.float_text(*v)),
            },
            AggregateKind::Avg { .. } => {
                if self.count == 0 {
                    None
                } else {
                    match &self.sum {
                        Sum::None => None,
                        Sum::Int(v) => Some(self.numeric_avg(NumericValue::Finite((*v).into()))),
                        Sum::Numeric(v) => Some(self.numeric_avg(v.clone())),
                        Sum::Float(v) => Some(float8_text(*v / self.count as f64)),
                    }
                }
            }
            AggregateKind::Min | AggregateKind::Max => return Ok(self.best.clone()),
            AggregateKind::BoolAnd | AggregateKind::BoolOr => {
                self.flag.map(|f| if f { "t" } else { "f" }.to_string())
            }
        };
        Ok(text.map(Bytes::from))
    }

    fn float_text(&self, v: f64) -> String {
        match self.ty {
            ValueType::Float { single: true } => float4_text(v as f32),
            _ => float8_text(v),
        }
    }

    fn numeric_avg(&self, sum: NumericValue) -> String {
        let count = BigDecimal::from_str(&self.count.to_string()).unwrap_or_default();
        match sum {
            NumericValue::Finite(s) => numeric_div(&s, &count)
                .map(|q| q.to_plain_string())
                .unwrap_or_default(),
            other => numeric_text(&other),
        }
    }

    /// The type OID and size of the avg result that replaces the sum's in the
    /// RowDescription: numeric for integer and numeric input, float8 for floats.
    pub fn avg_result_type(sum_type: ValueType) -> (u32, i16) {
        match sum_type {
            ValueType::Float { .. } => (701, 8),
            _ => (1700, -1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: AggregateKind, oid: u32, values: &[Option<&str>]) -> Option<String> {
        let mut acc = Accumulator::new(kind, ValueType::from_oid(oid));
        for v in values {
            acc.add(v.map(str::as_bytes), None).unwrap();
        }
        acc.finish()
            .unwrap()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn sums_keep_their_type_and_nulls() {
        assert_eq!(
            run(AggregateKind::Sum, 20, &[Some("5"), None, Some("-2")]).as_deref(),
            Some("3")
        );
        assert_eq!(run(AggregateKind::Sum, 20, &[None, None]), None);
        assert_eq!(
            run(AggregateKind::Sum, 1700, &[Some("1.50"), Some("2.5")]).as_deref(),
            Some("4.00")
        );
        assert_eq!(
            run(AggregateKind::Sum, 701, &[Some("0.1"), Some("0.2")]).as_deref(),
            Some("0.30000000000000004")
        );
        assert_eq!(
            run(AggregateKind::Count, 20, &[Some("3"), Some("0")]).as_deref(),
            Some("3")
        );
    }

    #[test]
    fn min_max_compare_by_type() {
        assert_eq!(
            run(AggregateKind::Max, 23, &[Some("9"), Some("10"), None]).as_deref(),
            Some("10")
        );
        assert_eq!(
            run(AggregateKind::Min, 25, &[Some("b"), Some("a")]).as_deref(),
            Some("a")
        );
        assert_eq!(run(AggregateKind::Min, 23, &[None]), None);
    }

    #[test]
    fn averages_divide_the_sums() {
        let mut acc = Accumulator::new(
            AggregateKind::Avg {
                count_column: pgshard_router::plan::ColumnRef::Hidden(0),
            },
            ValueType::from_oid(20),
        );
        acc.add(Some(b"3"), Some(b"1")).unwrap();
        acc.add(Some(b"2"), Some(b"2")).unwrap();
        acc.add(None, Some(b"0")).unwrap();
        assert_eq!(
            acc.finish().unwrap().unwrap(),
            Bytes::from("1.6666666666666667")
        );
        let empty = Accumulator::new(
            AggregateKind::Avg {
                count_column: pgshard_router::plan::ColumnRef::Hidden(0),
            },
            ValueType::from_oid(20),
        );
        assert_eq!(empty.finish().unwrap(), None);
    }

    #[test]
    fn bool_aggregates() {
        assert_eq!(
            run(AggregateKind::BoolAnd, 16, &[Some("t"), Some("f")]).as_deref(),
            Some("f")
        );
        assert_eq!(
            run(AggregateKind::BoolOr, 16, &[Some("f"), None, Some("t")]).as_deref(),
            Some("t")
        );
    }
}
