//! GROUP BY, DISTINCT and aggregates over the rows of several shards: rows with equal
//! keys become one group, whose aggregates combine every shard's partial values.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::str::FromStr;

use bigdecimal::BigDecimal;
use bytes::Bytes;
use pgshard_router::plan::{AggregateKind, Grouping, Predicate};

use super::aggregate::Accumulator;
use super::compare::parse_float;
use super::compute::Computation;
use super::error::MergeError;
use super::having::evaluate;
use super::order::{resolve, RowOrder, SortedRows, Window};
use super::row::Row;
use super::value_type::ValueType;

/// The groups merged so far, in the order they were first seen.
pub struct Groups {
    /// Key columns, as row indexes.
    keys: Vec<usize>,
    /// Aggregate columns: index, how they combine, and an avg's count column.
    aggregates: Vec<(usize, AggregateKind, Option<usize>)>,
    visible: usize,
    types: Vec<ValueType>,
    /// The column types once aggregates are finished and columns computed, for HAVING.
    merged_types: Vec<ValueType>,
    /// Computed columns (as row indexes) and how they are computed.
    computations: Vec<(usize, Computation)>,
    index: HashMap<Vec<Option<Vec<u8>>>, usize>,
    groups: Vec<(Row, Vec<Accumulator>)>,
}

impl Groups {
    /// `types` are the shard rows' column types; the client sees the first `visible`.
    pub fn new(
        spec: &Grouping,
        types: Vec<ValueType>,
        visible: usize,
    ) -> Result<Groups, MergeError> {
        let keys: Vec<usize> = spec.keys.iter().map(|&c| resolve(c, visible)).collect();
        let aggregates: Vec<_> = spec
            .aggregates
            .iter()
            .map(|a| {
                let count = match a.kind {
                    AggregateKind::Avg { count_column } => Some(resolve(count_column, visible)),
                    _ => None,
                };
                (resolve(a.column, visible), a.kind, count)
            })
            .collect();
        let columns = types.len();
        let used = keys.iter().copied().chain(
            aggregates
                .iter()
                .flat_map(|a| std::iter::once(a.0).chain(a.2)),
        );
        if used.into_iter().any(|c| c >= columns) {
            return Err(MergeError::Mismatch);
        }
        Ok(Groups {
            keys,
            aggregates,
            visible,
            merged_types: types.clone(),
            types,
            computations: Vec::new(),
            index: HashMap::new(),
            groups: Vec::new(),
        })
    }

    /// Columns to compute from the finished aggregates (row index and computation), and
    /// the column types of the finished rows that HAVING compares by.
    pub fn compute(
        mut self,
        computations: Vec<(usize, Computation)>,
        merged_types: Vec<ValueType>,
    ) -> Result<Groups, MergeError> {
        let columns = self.types.len();
        if merged_types.len() != columns || computations.iter().any(|(c, _)| *c >= columns) {
            return Err(MergeError::Mismatch);
        }
        self.computations = computations;
        self.merged_types = merged_types;
        Ok(self)
    }

    /// Takes one shard row (a partial group).
    pub fn add(&mut self, row: Row) -> Result<(), MergeError> {
        let key = self
            .keys
            .iter()
            .map(|&c| group_key(self.types[c], row.values.get(c).and_then(|v| v.as_deref())))
            .collect::<Result<Vec<_>, _>>()?;
        let slot = match self.index.get(&key) {
            Some(&slot) => slot,
            None => {
                let accumulators = self.new_accumulators();
                self.groups.push((row.clone(), accumulators));
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let (_, accumulators) = &mut self.groups[slot];
        for (&(column, _, count), acc) in self.aggregates.iter().zip(accumulators.iter_mut()) {
            let value = row.values.get(column).and_then(|v| v.as_deref());
            let count = count
                .and_then(|c| row.values.get(c))
                .and_then(|v| v.as_deref());
            acc.add(value, count)?;
        }
        Ok(())
    }

    /// The merged rows: aggregates finished, HAVING applied, sorted, windowed. Without
    /// GROUP BY keys there is exactly one row, even when no shard had any.
    pub fn finish(
        mut self,
        having: Option<&Predicate>,
        order: &RowOrder,
        window: Window,
    ) -> Result<Vec<Row>, MergeError> {
        if self.groups.is_empty() && self.keys.is_empty() && !self.aggregates.is_empty() {
            // No shard answered a row (cannot happen for aggregates, but be exact).
            let row = Row {
                values: vec![None; self.types.len()],
            };
            let accumulators = self.new_accumulators();
            self.groups.push((row, accumulators));
        }
        let mut rows = SortedRows::new(order.clone(), &window);
        for row in self.take(having)? {
            rows.push(row)?;
        }
        rows.finish(window)
    }

    /// The groups so far as rows, aggregates finished and HAVING applied, in the order
    /// they were first seen; the groups are emptied.
    pub fn take(&mut self, having: Option<&Predicate>) -> Result<Vec<Row>, MergeError> {
        self.index.clear();
        let mut rows = Vec::with_capacity(self.groups.len());
        for (mut row, accumulators) in std::mem::take(&mut self.groups) {
            for (&(column, _, _), acc) in self.aggregates.iter().zip(&accumulators) {
                *row.values.get_mut(column).ok_or(MergeError::Mismatch)? = acc.finish()?;
            }
            // Every computation reads the combined values, none another's result.
            let computed = self
                .computations
                .iter()
                .map(|(column, computation)| Ok((*column, computation.evaluate(&row)?)))
                .collect::<Result<Vec<_>, MergeError>>()?;
            for (column, value) in computed {
                *row.values.get_mut(column).ok_or(MergeError::Mismatch)? = value;
            }
            if let Some(p) = having {
                if evaluate(p, &row, &self.merged_types, self.visible)? != Some(true) {
                    continue;
                }
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// Groups merged from shards that each send their groups sorted by the keys: the
/// shards' rows, read least key first, meet every partial group of a key together, so
/// only the groups of one key (several only where the order ties values that group
/// apart) are held at a time, whatever the number of groups.
pub struct SortedGroups {
    groups: Groups,
    /// The shards' sort order, over the key columns.
    keys: RowOrder,
    having: Option<Predicate>,
    /// The first row of the key being merged.
    current: Option<Row>,
    /// Finished groups, HAVING applied, waiting to be read.
    ready: VecDeque<Row>,
    ended: bool,
}

impl SortedGroups {
    pub fn new(groups: Groups, keys: RowOrder, having: Option<Predicate>) -> SortedGroups {
        SortedGroups {
            groups,
            keys,
            having,
            current: None,
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// Takes the next shard row in key order, or `None` once every shard ended. A row
    /// whose key sorts before the current one means the shards' order is not the one
    /// the proxy compares by: an error, before any group could be answered wrongly.
    pub fn push(&mut self, row: Option<Row>) -> Result<(), MergeError> {
        let Some(row) = row else {
            self.close_key()?;
            self.ended = true;
            return Ok(());
        };
        if let Some(current) = &self.current {
            match self.keys.compare(&row, current)? {
                Ordering::Less => return Err(out_of_order()),
                Ordering::Greater => self.close_key()?,
                Ordering::Equal => {}
            }
        }
        if self.current.is_none() {
            self.current = Some(row.clone());
        }
        self.groups.add(row)
    }

    /// The next finished group.
    pub fn pop(&mut self) -> Option<Row> {
        self.ready.pop_front()
    }

    /// Every group was read: the shards ended and nothing is waiting.
    pub fn is_done(&self) -> bool {
        self.ended && self.ready.is_empty()
    }

    fn close_key(&mut self) -> Result<(), MergeError> {
        self.current = None;
        let rows = self.groups.take(self.having.as_ref())?;
        self.ready.extend(rows);
        Ok(())
    }
}

/// A shard's rows came in another order than the proxy compares them by.
pub fn out_of_order() -> MergeError {
    MergeError::Unsupported(
        "a shard returned rows in another order than pgshard compares them (a column with a \
         collation of its own, or a type whose order pgshard does not know); order or group \
         by an expression with a plain type or the \"C\" collation, or filter on the shard key"
            .to_string(),
    )
}

impl Groups {
    fn new_accumulators(&self) -> Vec<Accumulator> {
        self.aggregates
            .iter()
            .map(|&(column, kind, _)| Accumulator::new(kind, self.types[column]))
            .collect()
    }
}

/// A grouping key that is equal exactly when PostgreSQL's equality says so: numbers
/// by value (`1.0` = `1.00`), char(n) without trailing blanks.
fn group_key(ty: ValueType, value: Option<&[u8]>) -> Result<Option<Vec<u8>>, MergeError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let text = || std::str::from_utf8(v).map_err(|_| MergeError::Mismatch);
    Ok(Some(match ty {
        ValueType::Numeric => match text()? {
            t @ ("NaN" | "Infinity" | "-Infinity") => t.as_bytes().to_vec(),
            t => BigDecimal::from_str(t)
                .map_err(|_| MergeError::Mismatch)?
                .normalized()
                .to_string()
                .into_bytes(),
        },
        ValueType::Float { .. } => {
            let f = parse_float(text()?)?;
            let f = if f == 0.0 { 0.0 } else { f };
            if f.is_nan() {
                b"NaN".to_vec()
            } else {
                f.to_bits().to_be_bytes().to_vec()
            }
        }
        ValueType::Bpchar => {
            let end = v.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
            v[..end].to_vec()
        }
        ValueType::Interval => super::compare::interval(v)?.span().to_be_bytes().to_vec(),
        ValueType::Other { oid } => {
            // Equal text is equal value for most types, but not all (json, numeric[]);
            // be safe only with those whose output is canonical: bytea, "char", inet,
            // cidr, macaddr, macaddr8, timetz (and the arrays of ValueType::Array).
            const CANONICAL: &[u32] = &[17, 18, 869, 650, 829, 774, 1266];
            if !CANONICAL.contains(&oid) {
                return Err(MergeError::Unsupported(format!(
                    "cannot group values of type OID {oid} across shards (GROUP BY, DISTINCT); \
                     cast the column to text or a number"
                )));
            }
            v.to_vec()
        }
        _ => v.to_vec(),
    }))
}

/// Rows of one shard keep the client's column values unchanged; `Bytes` is cheap to
/// clone, so the first row of a group stands for the group's key columns.
pub fn text(value: &str) -> Option<Bytes> {
    Some(Bytes::from(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgshard_router::plan::{Aggregate, ColumnRef, CompareOp, SortKey};

    fn row(values: &[Option<&str>]) -> Row {
        Row {
            values: values.iter().map(|v| v.and_then(text)).collect(),
        }
    }

    fn strings(rows: &[Row]) -> Vec<Vec<Option<String>>> {
        rows.iter()
            .map(|r| {
                r.values
                    .iter()
                    .map(|v| v.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn groups_from_several_shards_combine_with_having_and_order() {
        // SELECT region, count(*), sum(amount) ... GROUP BY region HAVING count(*) > 1
        // ORDER BY sum DESC
        let spec = Grouping {
            keys: vec![ColumnRef::Visible(0)],
            aggregates: vec![
                Aggregate {
                    column: ColumnRef::Visible(1),
                    kind: AggregateKind::Count,
                },
                Aggregate {
                    column: ColumnRef::Visible(2),
                    kind: AggregateKind::Sum,
                },
            ],
            computed: vec![],
            sorted_by: vec![],
        };
        let types = vec![
            ValueType::Text,
            ValueType::from_oid(20),
            ValueType::from_oid(1700),
        ];
        let mut groups = Groups::new(&spec, types.clone(), 3).unwrap();
        for r in [
            row(&[Some("eu"), Some("1"), Some("10.5")]),
            row(&[Some("us"), Some("1"), Some("3")]),
            row(&[Some("eu"), Some("2"), Some("1")]),
            row(&[Some("asia"), Some("3"), None]),
        ] {
            groups.add(r).unwrap();
        }
        let having = Predicate::Compare {
            column: ColumnRef::Visible(1),
            op: CompareOp::Gt,
            value: Some("1".into()),
        };
        let order = RowOrder::new(
            &[SortKey {
                column: ColumnRef::Visible(2),
                descending: true,
                nulls_first: true,
            }],
            &types,
            3,
        )
        .unwrap();
        let rows = groups
            .finish(Some(&having), &order, Window::new(0, None))
            .unwrap();
        assert_eq!(
            strings(&rows),
            vec![
                vec![Some("asia".into()), Some("3".into()), None],
                vec![Some("eu".into()), Some("3".into()), Some("11.5".into())],
            ]
        );
    }

    #[test]
    fn computed_columns_are_converted_before_having_and_order() {
        // SELECT region, count(*)::text AS n, avg(score) … GROUP BY region
        // HAVING avg(score) > 2 ORDER BY n
        let spec = Grouping {
            keys: vec![ColumnRef::Visible(0)],
            aggregates: vec![
                Aggregate {
                    column: ColumnRef::Visible(1),
                    kind: AggregateKind::Count,
                },
                Aggregate {
                    column: ColumnRef::Visible(2),
                    kind: AggregateKind::Avg {
                        count_column: ColumnRef::Hidden(0),
                    },
                },
            ],
            computed: vec![],
            sorted_by: vec![],
        };
        let shard_types = vec![
            ValueType::Text,
            ValueType::from_oid(20),
            ValueType::from_oid(20),
            ValueType::from_oid(20),
        ];
        let merged_types = vec![
            ValueType::Text,
            ValueType::Text,
            ValueType::Numeric,
            ValueType::from_oid(20),
        ];
        let int8 = super::super::cast::SqlType {
            oid: 20,
            typmod: -1,
        };
        let cast = Computation::new(
            &pgshard_router::plan::ValueExpr::Cast(
                Box::new(pgshard_router::plan::ValueExpr::Column(ColumnRef::Visible(
                    1,
                ))),
                pgshard_router::plan::CastTarget::Text,
            ),
            3,
            &[int8; 4],
        )
        .unwrap();
        let mut groups = Groups::new(&spec, shard_types, 3)
            .unwrap()
            .compute(vec![(1, cast)], merged_types.clone())
            .unwrap();
        for r in [
            row(&[Some("a"), Some("9"), Some("27"), Some("9")]),
            row(&[Some("b"), Some("10"), Some("30"), Some("10")]),
            row(&[Some("c"), Some("2"), Some("2"), Some("2")]),
        ] {
            groups.add(r).unwrap();
        }
        let having = Predicate::Compare {
            column: ColumnRef::Visible(2),
            op: CompareOp::Gt,
            value: Some("2".into()),
        };
        let order = RowOrder::new(
            &[SortKey {
                column: ColumnRef::Visible(1),
                descending: false,
                nulls_first: false,
            }],
            &merged_types,
            3,
        )
        .unwrap();
        let rows = groups
            .finish(Some(&having), &order, Window::new(0, None))
            .unwrap();
        // "10" sorts before "9" as text; the avg of 1 is not above 2.
        let firsts: Vec<_> = strings(&rows)
            .into_iter()
            .map(|r| r[..3].to_vec())
            .collect();
        assert_eq!(
            firsts,
            vec![
                vec![
                    Some("b".into()),
                    Some("10".into()),
                    Some("3.0000000000000000".into())
                ],
                vec![
                    Some("a".into()),
                    Some("9".into()),
                    Some("3.0000000000000000".into())
                ],
            ]
        );
    }

    #[test]
    fn numeric_keys_group_by_value_and_distinct_dedups() {
        let spec = Grouping {
            keys: vec![ColumnRef::Visible(0)],
            aggregates: vec![],
            computed: vec![],
            sorted_by: vec![],
        };
        let mut groups = Groups::new(&spec, vec![ValueType::Numeric], 1).unwrap();
        for v in ["1.0", "1.00", "2"] {
            groups.add(row(&[Some(v)])).unwrap();
        }
        let order = RowOrder::new(&[], &[], 0).unwrap();
        assert_eq!(
            groups
                .finish(None, &order, Window::new(0, None))
                .unwrap()
                .len(),
            2
        );
    }

    fn count_by_key() -> (Grouping, Vec<ValueType>) {
        let spec = Grouping {
            keys: vec![ColumnRef::Visible(0)],
            aggregates: vec![Aggregate {
                column: ColumnRef::Visible(1),
                kind: AggregateKind::Count,
            }],
            computed: vec![],
            sorted_by: vec![SortKey {
                column: ColumnRef::Visible(0),
                descending: false,
                nulls_first: false,
            }],
        };
        (spec, vec![ValueType::Numeric, ValueType::from_oid(20)])
    }

    #[test]
    fn sorted_groups_hold_one_key_at_a_time() {
        let (spec, types) = count_by_key();
        let groups = Groups::new(&spec, types.clone(), 2).unwrap();
        let keys = RowOrder::new(&spec.sorted_by, &types, 2).unwrap();
        let having = Predicate::Compare {
            column: ColumnRef::Visible(1),
            op: CompareOp::Gt,
            value: Some("1".into()),
        };
        let mut sorted = SortedGroups::new(groups, keys, Some(having));
        let mut out = Vec::new();
        // Two shards' rows merged least key first; 1.0 and 1.00 are one key.
        for r in [
            row(&[Some("1.0"), Some("2")]),
            row(&[Some("1.00"), Some("3")]),
            row(&[Some("2"), Some("1")]),
            row(&[Some("3"), Some("4")]),
            row(&[Some("3"), Some("1")]),
            row(&[None, Some("7")]),
        ] {
            sorted.push(Some(r)).unwrap();
            assert!(sorted.groups.groups.len() <= 1);
            out.extend(std::iter::from_fn(|| sorted.pop()));
        }
        assert!(!sorted.is_done());
        sorted.push(None).unwrap();
        out.extend(std::iter::from_fn(|| sorted.pop()));
        assert!(sorted.is_done());
        assert_eq!(
            strings(&out),
            vec![
                vec![Some("1.0".into()), Some("5".into())],
                vec![Some("3".into()), Some("5".into())],
                vec![None, Some("7".into())],
            ]
        );
    }

    #[test]
    fn sorted_groups_refuse_rows_out_of_order() {
        let (spec, types) = count_by_key();
        let groups = Groups::new(&spec, types.clone(), 2).unwrap();
        let keys = RowOrder::new(&spec.sorted_by, &types, 2).unwrap();
        let mut sorted = SortedGroups::new(groups, keys, None);
        sorted.push(Some(row(&[Some("5"), Some("1")]))).unwrap();
        sorted.push(Some(row(&[Some("6"), Some("1")]))).unwrap();
        assert_eq!(strings(&[sorted.pop().unwrap()])[0][0], Some("5".into()));
        let err = sorted.push(Some(row(&[Some("5"), Some("1")]))).unwrap_err();
        assert_eq!(err.sqlstate(), "0A000");
    }
}
