//! Range sharding: ordered, non-overlapping `[from, to)` key ranges, each owned by
//! one shard.

use super::{KeyValue, ShardingError};
use std::cmp::Ordering;

/// Key values from `from` (included) to `to` (excluded) belong to `shard`; `None` is
/// unbounded on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub shard: usize,
    pub from: Option<KeyValue>,
    pub to: Option<KeyValue>,
}

/// The ranges of one database, sorted by their lower bound.
///
/// Integers compare by value and text byte by byte, as under `COLLATE "C"`: the
/// proxy cannot know the column's collation, and byte order is the one order every
/// server agrees on. A key outside every range (and a NULL key) has no shard:
/// [`RangeMap::shard_of`] fails rather than guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMap {
    ranges: Vec<KeyRange>,
}

impl RangeMap {
    /// Sorts `ranges`; fails if bounds are NULL or of mixed kinds (integer, text,
    /// uuid), if a range is empty, or if two ranges overlap.
    pub fn new(mut ranges: Vec<KeyRange>) -> Result<RangeMap, ShardingError> {
        let invalid = |message: String| Err(ShardingError::InvalidMapping(message));
        let mut bounds = ranges
            .iter()
            .flat_map(|range| range.from.iter().chain(&range.to));
        if let Some(first) = bounds.next() {
            if first.is_null() {
                return invalid("a range bound is NULL".into());
            }
            if let Some(other) = bounds.find(|bound| compare(first, bound).is_none()) {
                return invalid(format!(
                    "range bounds {first} and {other} are of different types"
                ));
            }
        }
        ranges.sort_by(|a, b| match (&a.from, &b.from) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => compare(a, b).unwrap_or(Ordering::Equal),
        });
        for range in &ranges {
            if let (Some(from), Some(to)) = (&range.from, &range.to) {
                if compare(from, to) != Some(Ordering::Less) {
                    return invalid(format!("the range from {from} to {to} is empty"));
                }
            }
        }
        for pair in ranges.windows(2) {
            // Sorted by lower bound, a range overlaps its successor exactly when it
            // does not end at or before the successor's start.
            let ends_before = match (&pair[0].to, &pair[1].from) {
                (Some(to), Some(from)) => compare(to, from) != Some(Ordering::Greater),
                _ => false,
            };
            if !ends_before {
                return invalid(format!(
                    "the ranges of shards {} and {} overlap",
                    pair[0].shard, pair[1].shard
                ));
            }
        }
        Ok(RangeMap { ranges })
    }

    pub fn ranges(&self) -> &[KeyRange] {
        &self.ranges
    }

    /// The shard whose range holds `value`.
    pub fn shard_of(&self, value: &KeyValue) -> Result<usize, ShardingError> {
        let no_shard = || ShardingError::NoShardForKey {
            value: value.to_string(),
        };
        // The last range starting at or below the value is the only candidate.
        let candidates = self.ranges.partition_point(|range| {
            range
                .from
                .as_ref()
                .is_none_or(|from| compare(from, value) != Some(Ordering::Greater))
        });
        let range = candidates
            .checked_sub(1)
            .map(|index| &self.ranges[index])
            .ok_or_else(no_shard)?;
        let starts_below = range
            .from
            .as_ref()
            .is_none_or(|from| compare(from, value).is_some());
        let ends_above = range
            .to
            .as_ref()
            .is_none_or(|to| compare(value, to) == Some(Ordering::Less));
        if starts_below && ends_above {
            Ok(range.shard)
        } else {
            Err(no_shard())
        }
    }
}

/// Orders two non-NULL values of the same kind; `None` otherwise.
fn compare(a: &KeyValue, b: &KeyValue) -> Option<Ordering> {
    match (a, b) {
        (KeyValue::Int(a), KeyValue::Int(b)) => Some(a.cmp(b)),
        (KeyValue::Text(a), KeyValue::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (KeyValue::Uuid(a), KeyValue::Uuid(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(shard: usize, from: Option<i64>, to: Option<i64>) -> KeyRange {
        KeyRange {
            shard,
            from: from.map(KeyValue::Int),
            to: to.map(KeyValue::Int),
        }
    }

    fn int(map: &RangeMap, value: i64) -> Result<usize, ShardingError> {
        map.shard_of(&KeyValue::Int(value))
    }

    #[test]
    fn bounds_include_from_and_exclude_to() {
        let map = RangeMap::new(vec![
            range(2, Some(100), Some(200)),
            range(0, None, Some(0)),
            range(1, Some(0), Some(100)),
            range(0, Some(300), None),
        ])
        .unwrap();
        assert_eq!(int(&map, i64::MIN), Ok(0));
        assert_eq!(int(&map, -1), Ok(0));
        assert_eq!(int(&map, 0), Ok(1));
        assert_eq!(int(&map, 99), Ok(1));
        assert_eq!(int(&map, 100), Ok(2));
        assert_eq!(int(&map, 199), Ok(2));
        assert_eq!(int(&map, 300), Ok(0));
        assert_eq!(int(&map, i64::MAX), Ok(0));
    }

    #[test]
    fn gaps_null_and_other_kinds_have_no_shard() {
        let map = RangeMap::new(vec![
            range(0, Some(0), Some(100)),
            range(1, Some(200), Some(300)),
        ])
        .unwrap();
        for value in [
            KeyValue::Int(-1),
            KeyValue::Int(100),
            KeyValue::Int(250 + 50),
            KeyValue::Null,
            KeyValue::Text("50".into()),
        ] {
            assert_eq!(
                map.shard_of(&value),
                Err(ShardingError::NoShardForKey {
                    value: value.to_string()
                }),
                "{value}"
            );
        }
    }

    #[test]
    fn text_compares_by_bytes() {
        let text = |s: &str| Some(KeyValue::Text(s.into()));
        let map = RangeMap::new(vec![
            KeyRange {
                shard: 0,
                from: None,
                to: text("n"),
            },
            KeyRange {
                shard: 1,
                from: text("n"),
                to: None,
            },
        ])
        .unwrap();
        let shard = |s: &str| map.shard_of(&KeyValue::Text(s.into())).unwrap();
        assert_eq!(shard(""), 0);
        assert_eq!(shard("Zebra"), 0);
        assert_eq!(shard("m\u{10FFFF}"), 0);
        assert_eq!(shard("n"), 1);
        assert_eq!(shard("émile"), 1);
    }

    #[test]
    fn refuses_overlaps_empty_ranges_and_mixed_kinds() {
        for ranges in [
            vec![range(0, None, Some(10)), range(1, Some(5), None)],
            vec![range(0, None, None), range(1, Some(5), Some(6))],
            vec![range(0, Some(0), Some(10)), range(1, Some(0), Some(5))],
            vec![range(0, Some(5), Some(5))],
            vec![KeyRange {
                shard: 0,
                from: Some(KeyValue::Int(1)),
                to: Some(KeyValue::Text("b".into())),
            }],
            vec![KeyRange {
                shard: 0,
                from: Some(KeyValue::Null),
                to: None,
            }],
        ] {
            assert!(
                matches!(
                    RangeMap::new(ranges.clone()),
                    Err(ShardingError::InvalidMapping(_))
                ),
                "{ranges:?}"
            );
        }
        assert!(RangeMap::new(Vec::new()).is_ok());
    }
}
