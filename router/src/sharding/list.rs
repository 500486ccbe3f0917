//! List sharding: explicit key values, each owned by one shard.

use super::{KeyValue, ShardingError};
use std::collections::HashMap;

/// Which shard owns each listed key value. An unlisted value (and NULL) has no shard:
/// [`ListMap::shard_of`] fails rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListMap {
    shards: HashMap<KeyValue, usize>,
}

impl ListMap {
    /// Builds the map from (value, shard) pairs; fails if a value is NULL or listed
    /// twice.
    pub fn new(
        entries: impl IntoIterator<Item = (KeyValue, usize)>,
    ) -> Result<ListMap, ShardingError> {
        let mut shards = HashMap::new();
        for (value, shard) in entries {
            if value.is_null() {
                return Err(ShardingError::InvalidMapping("a list value is NULL".into()));
            }
            if let Some(first) = shards.insert(value.clone(), shard) {
                return Err(ShardingError::InvalidMapping(format!(
                    "the value {value} is listed for shards {first} and {shard}"
                )));
            }
        }
        Ok(ListMap { shards })
    }

    /// The shard listing `value`.
    pub fn shard_of(&self, value: &KeyValue) -> Result<usize, ShardingError> {
        self.shards
            .get(value)
            .copied()
            .ok_or_else(|| ShardingError::NoShardForKey {
                value: value.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> KeyValue {
        KeyValue::Text(s.into())
    }

    #[test]
    fn listed_values_have_their_shard_others_none() {
        let map = ListMap::new([(text("de"), 0), (text("at"), 0), (text("fr"), 1)]).unwrap();
        assert_eq!(map.shard_of(&text("at")), Ok(0));
        assert_eq!(map.shard_of(&text("fr")), Ok(1));
        for value in [text("FR"), text("it"), KeyValue::Null, KeyValue::Int(1)] {
            assert_eq!(
                map.shard_of(&value),
                Err(ShardingError::NoShardForKey {
                    value: value.to_string()
                })
            );
        }
    }

    #[test]
    fn refuses_duplicates_and_null() {
        assert_eq!(
            ListMap::new([(KeyValue::Int(1), 0), (KeyValue::Int(1), 1)]),
            Err(ShardingError::InvalidMapping(
                "the value 1 is listed for shards 0 and 1".into()
            ))
        );
        assert!(ListMap::new([(KeyValue::Null, 0)]).is_err());
    }
}
