//! The order of merged rows: ORDER BY keys compared by their column types.

use std::cmp::Ordering;

use pgshard_router::plan::{ColumnRef, SortKey};

use super::compare::{compare, compare_nullable};
use super::error::MergeError;
use super::row::Row;
use super::value_type::ValueType;

/// Compares rows by a query's ORDER BY.
#[derive(Debug, Clone)]
pub struct RowOrder {
    keys: Vec<(ResolvedKey, ValueType)>,
}

/// A sort key with its column as an index into the row.
#[derive(Debug, Clone, Copy)]
struct ResolvedKey {
    column: usize,
    descending: bool,
    nulls_first: bool,
}

/// The index in a row of `column`, when the client sees the first `visible` columns.
pub fn resolve(column: ColumnRef, visible: usize) -> usize {
    match column {
        ColumnRef::Visible(i) => i,
        ColumnRef::Hidden(i) => visible + i,
    }
}

impl RowOrder {
    /// `types` are the result columns' types; a key beyond them is a mismatch between
    /// plan and result.
    pub fn new(
        keys: &[SortKey],
        types: &[ValueType],
        visible: usize,
    ) -> Result<RowOrder, MergeError> {
        let keys = keys
            .iter()
            .map(|k| {
                let key = ResolvedKey {
                    column: resolve(k.column, visible),
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                };
                types
                    .get(key.column)
                    .map(|t| (key, *t))
                    .ok_or(MergeError::Mismatch)
            })
            .collect::<Result<_, _>>()?;
        Ok(RowOrder { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn compare(&self, a: &Row, b: &Row) -> Result<Ordering, MergeError> {
        for (key, ty) in &self.keys {
            let order = match (value(a, key.column), value(b, key.column)) {
                // NULL placement does not flip with DESC.
                (Some(va), Some(vb)) if key.descending => compare(*ty, va, vb)?.reverse(),
                (va, vb) => compare_nullable(*ty, va, vb, key.nulls_first)?,
            };
            if order != Ordering::Equal {
                return Ok(order);
            }
        }
        Ok(Ordering::Equal)
    }
}

fn value(row: &Row, column: usize) -> Option<&[u8]> {
    row.values.get(column).and_then(|v| v.as_deref())
}

/// OFFSET and LIMIT applied to the merged rows.
#[derive(Debug, Clone)]
pub struct Window {
    skip: u64,
    left: Option<u64>,
}

/// What to do with the next merged row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Skip,
    Take,
    /// The limit is reached: no more rows are needed.
    Done,
}

impl Window {
    pub fn new(offset: u64, limit: Option<u64>) -> Window {
        Window {
            skip: offset,
            left: limit,
        }
    }

    pub fn is_done(&self) -> bool {
        self.left == Some(0)
    }

    /// How many rows from the start the window can reach (offset plus limit), if limited.
    pub fn reach(&self) -> Option<u64> {
        self.left.map(|left| left.saturating_add(self.skip))
    }

    pub fn admit(&mut self) -> Admit {
        if self.is_done() {
            return Admit::Done;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return Admit::Skip;
        }
        if let Some(left) = self.left.as_mut() {
            *left -= 1;
        }
        Admit::Take
    }
}

/// Rows gathered for a sort of their own (groups ordered by an aggregate): with a
/// window whose reach is `k`, only the first `k` rows in order are kept, so memory holds
/// about `2k` rows whatever the number of rows.
pub struct SortedRows {
    order: RowOrder,
    keep: Option<usize>,
    rows: Vec<Row>,
}

impl SortedRows {
    pub fn new(order: RowOrder, window: &Window) -> SortedRows {
        SortedRows {
            order,
            keep: window
                .reach()
                .map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Row) -> Result<(), MergeError> {
        self.rows.push(row);
        if let Some(keep) = self.keep {
            if self.rows.len() >= keep.saturating_mul(2).max(1024) {
                self.sort()?;
                self.rows.truncate(keep);
            }
        }
        Ok(())
    }

    /// The rows in order, through `window`.
    pub fn finish(mut self, mut window: Window) -> Result<Vec<Row>, MergeError> {
        self.sort()?;
        let mut out = Vec::new();
        for row in self.rows {
            match window.admit() {
                Admit::Skip => {}
                Admit::Take => out.push(row),
                Admit::Done => break,
            }
        }
        Ok(out)
    }

    fn sort(&mut self) -> Result<(), MergeError> {
        if self.order.is_empty() {
            return Ok(());
        }
        let mut failure = None;
        self.rows.sort_by(|a, b| {
            self.order.compare(a, b).unwrap_or_else(|e| {
                failure.get_or_insert(e);
                Ordering::Equal
            })
        });
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn row(values: &[Option<&str>]) -> Row {
        Row {
            values: values
                .iter()
                .map(|v| v.map(|s| Bytes::from(s.to_string())))
                .collect(),
        }
    }

    #[test]
    fn orders_by_several_keys_with_directions_and_nulls() {
        let types = [ValueType::from_oid(23), ValueType::from_oid(25)];
        let keys = [
            SortKey {
                column: ColumnRef::Visible(0),
                descending: true,
                nulls_first: true,
            },
            SortKey {
                column: ColumnRef::Visible(1),
                descending: false,
                nulls_first: false,
            },
        ];
        let order = RowOrder::new(&keys, &types, 2).unwrap();
        let a = row(&[Some("10"), Some("x")]);
        let b = row(&[Some("9"), Some("a")]);
        let n = row(&[None, Some("a")]);
        assert_eq!(order.compare(&a, &b).unwrap(), Ordering::Less);
        assert_eq!(order.compare(&n, &a).unwrap(), Ordering::Less);
        let c = row(&[Some("10"), None]);
        assert_eq!(order.compare(&a, &c).unwrap(), Ordering::Less);
    }

    #[test]
    fn window_skips_then_takes_then_stops() {
        let mut w = Window::new(1, Some(2));
        let got: Vec<_> = (0..5).map(|_| w.admit()).collect();
        assert_eq!(
            got,
            [
                Admit::Skip,
                Admit::Take,
                Admit::Take,
                Admit::Done,
                Admit::Done
            ]
        );
        let mut unlimited = Window::new(0, None);
        assert_eq!(unlimited.admit(), Admit::Take);
    }

    #[test]
    fn sorted_rows_keep_only_what_the_window_reaches() {
        let keys = [SortKey {
            column: ColumnRef::Visible(0),
            descending: true,
            nulls_first: true,
        }];
        let order = RowOrder::new(&keys, &[ValueType::from_oid(23)], 1).unwrap();
        let window = Window::new(2, Some(3));
        let mut rows = SortedRows::new(order, &window);
        for i in 0..10_000 {
            // A shuffled 0..10000.
            let v = (i * 7919) % 10_000;
            rows.push(row(&[Some(&v.to_string())])).unwrap();
            assert!(rows.rows.len() <= 1024);
        }
        let got: Vec<_> = rows
            .finish(window)
            .unwrap()
            .iter()
            .map(|r| r.values[0].clone().unwrap())
            .collect();
        assert_eq!(got, ["9997", "9996", "9995"]);
    }

    #[test]
    fn a_key_outside_the_result_is_a_mismatch() {
        let keys = [SortKey {
            column: ColumnRef::Hidden(2),
            descending: false,
            nulls_first: false,
        }];
        assert!(RowOrder::new(&keys, &[ValueType::Text], 1).is_err());
    }
}
