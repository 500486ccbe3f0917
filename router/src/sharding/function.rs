//! The sharding function of a database, built from its configuration.

use super::partition_hash::hash_partition;
use super::{KeyRange, KeyType, KeyValue, ListMap, RangeMap, Ring, ShardingError};
use pgshard_config::{DatabaseConfig, ShardValue, ShardingFunctionKind};

/// Maps a sharded table's key value to the index of the shard holding the row.
///
/// Shard indexes follow the order of the database's `[[databases.shards]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardingFunction {
    /// The partition `PARTITION BY HASH` with `MODULUS` = the number of shards would
    /// choose: shard `i` holds exactly the rows of `FOR VALUES WITH (MODULUS n,
    /// REMAINDER i)`, so PostgreSQL itself can check, split or merge shards. A NULL
    /// key is on shard 0, as PostgreSQL puts it in remainder 0.
    Hash,
    /// Consistent hashing; a NULL key is placed like the hash 0.
    Ring(Ring),
    /// Operator-defined ranges; NULL and values outside every range have no shard.
    Range(RangeMap),
    /// Operator-defined values; NULL and unlisted values have no shard.
    List(ListMap),
}

impl ShardingFunction {
    /// The function `database` configures, for a sharded table whose key is of type
    /// `key_type` (range bounds and list values are read as that type).
    ///
    /// Configuration validation has already refused mappings that do not fit a
    /// sharded table's key, so an error here means the configuration was built
    /// without it.
    pub fn for_table(
        database: &DatabaseConfig,
        key_type: KeyType,
    ) -> Result<ShardingFunction, ShardingError> {
        let value = |value: &ShardValue| key_value(key_type, value);
        Ok(match database.sharding_function {
            ShardingFunctionKind::Hash => ShardingFunction::Hash,
            ShardingFunctionKind::Ring => ShardingFunction::Ring(Ring::new(
                database.shards.len(),
                database.ring_virtual_nodes,
            )),
            ShardingFunctionKind::Range => ShardingFunction::Range(RangeMap::new(
                database
                    .shard_ranges
                    .iter()
                    .map(|range| {
                        Ok(KeyRange {
                            shard: range.shard,
                            from: range.from.as_ref().map(value).transpose()?,
                            to: range.to.as_ref().map(value).transpose()?,
                        })
                    })
                    .collect::<Result<_, ShardingError>>()?,
            )?),
            ShardingFunctionKind::List => ShardingFunction::List(ListMap::new(
                database
                    .shard_lists
                    .iter()
                    .flat_map(|list| list.values.iter().map(|v| Ok((value(v)?, list.shard))))
                    .collect::<Result<Vec<_>, ShardingError>>()?,
            )?),
        })
    }

    /// The index of the shard, among `shards`, that holds rows whose key is `value`.
    ///
    /// A ring built for another number of shards is rebuilt for `shards` for this
    /// call, so comparing placements before and after adding a shard works, but is
    /// slow; build a [`Ring`] per shard count for repeated use.
    pub fn shard_of(&self, value: &KeyValue, shards: usize) -> Result<usize, ShardingError> {
        if shards == 0 {
            return Err(ShardingError::NoShards);
        }
        let shard = match self {
            ShardingFunction::Hash => return Ok(hash_partition(value, shards)),
            ShardingFunction::Ring(ring) if ring.shards() == shards => return ring.shard_of(value),
            ShardingFunction::Ring(ring) => {
                return Ring::new(shards, ring.virtual_nodes()).shard_of(value)
            }
            ShardingFunction::Range(ranges) => ranges.shard_of(value)?,
            ShardingFunction::List(lists) => lists.shard_of(value)?,
        };
        // Validation ties mappings to the configured shards; a caller passing fewer
        // must not get an index past them.
        if shard >= shards {
            return Err(ShardingError::ShardOutOfRange {
                value: value.to_string(),
                shard,
                shards,
            });
        }
        Ok(shard)
    }
}

/// A configured bound or list value read as a key of `key_type`.
fn key_value(key_type: KeyType, value: &ShardValue) -> Result<KeyValue, ShardingError> {
    match (value, key_type.integer_range()) {
        (ShardValue::Int(int), Some(_)) => Ok(KeyValue::Int(*int)),
        (ShardValue::Text(text), None) => KeyValue::from_text(key_type, text),
        (ShardValue::Int(int), None) => Err(ShardingError::InvalidText {
            key_type,
            text: int.to_string(),
        }),
        (ShardValue::Text(text), Some(_)) => Err(ShardingError::InvalidText {
            key_type,
            text: text.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first database of a file with two shards and `settings`.
    fn database(settings: &str) -> DatabaseConfig {
        let text = format!(
            "[[users]]\nname = \"app\"\npassword = \"secret\"\n\
             [[databases]]\nname = \"app\"\n{settings}\n\
             [[databases.shards]]\nprimary = \"db1\"\n[[databases.shards]]\nprimary = \"db2\"\n"
        );
        pgshard_config::parse(&text, "pgshard.toml")
            .unwrap_or_else(|errors| panic!("{errors}"))
            .databases
            .remove(0)
    }

    #[test]
    fn hash_is_the_default_and_puts_null_on_shard_zero() {
        let function = ShardingFunction::for_table(&database(""), KeyType::Int8).unwrap();
        assert_eq!(function, ShardingFunction::Hash);
        // 42 is in remainder 0 of 2 and 3, 2 of 4 (see the PostgreSQL vectors).
        assert_eq!(function.shard_of(&KeyValue::Int(42), 4), Ok(2));
        assert_eq!(function.shard_of(&KeyValue::Null, 4), Ok(0));
        assert_eq!(
            function.shard_of(&KeyValue::Int(42), 0),
            Err(ShardingError::NoShards)
        );
    }

    #[test]
    fn ring_uses_the_configured_points() {
        let function = ShardingFunction::for_table(
            &database("sharding_function = \"ring\"\nring_virtual_nodes = 16"),
            KeyType::Text,
        )
        .unwrap();
        let ShardingFunction::Ring(ring) = &function else {
            panic!("{function:?}")
        };
        assert_eq!((ring.shards(), ring.virtual_nodes()), (2, 16));
        let key = KeyValue::Text("tenant-7".into());
        assert_eq!(function.shard_of(&key, 2), ring.shard_of(&key));
        assert_eq!(function.shard_of(&key, 5), Ring::new(5, 16).shard_of(&key));
    }

    #[test]
    fn range_reads_bounds_as_the_key_type() {
        let function = ShardingFunction::for_table(
            &database(
                "sharding_function = \"range\"\n\
                 shard_ranges = [{ shard = 1, from = 1000 }, { shard = 0, to = 1000 }]",
            ),
            KeyType::Int4,
        )
        .unwrap();
        assert_eq!(function.shard_of(&KeyValue::Int(999), 2), Ok(0));
        assert_eq!(function.shard_of(&KeyValue::Int(1000), 2), Ok(1));
        assert_eq!(
            function.shard_of(&KeyValue::Null, 2),
            Err(ShardingError::NoShardForKey {
                value: "NULL".into()
            })
        );
        assert_eq!(
            function.shard_of(&KeyValue::Int(1000), 1),
            Err(ShardingError::ShardOutOfRange {
                value: "1000".into(),
                shard: 1,
                shards: 1
            })
        );
        assert!(matches!(
            ShardingFunction::for_table(
                &database(
                    "sharding_function = \"range\"\nshard_ranges = [{ shard = 0, to = 1000 }]"
                ),
                KeyType::Text
            ),
            Err(ShardingError::InvalidText { .. })
        ));
    }

    #[test]
    fn list_reads_uuids_for_uuid_keys() {
        let settings = "sharding_function = \"list\"\n\
                        shard_lists = [{ shard = 1, values = [\"{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}\"] }, \
                        { shard = 0, values = [\"00000000-0000-0000-0000-000000000000\"] }]";
        let function = ShardingFunction::for_table(&database(settings), KeyType::Uuid).unwrap();
        let uuid = |text| KeyValue::from_text(KeyType::Uuid, text).unwrap();
        assert_eq!(
            function.shard_of(&uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), 2),
            Ok(1)
        );
        assert_eq!(
            function.shard_of(&uuid("00000000000000000000000000000000"), 2),
            Ok(0)
        );
        assert!(function
            .shard_of(&uuid("00000000000000000000000000000001"), 2)
            .is_err());
        // The same strings are plain text for a text key.
        let function = ShardingFunction::for_table(&database(settings), KeyType::Text).unwrap();
        assert_eq!(
            function.shard_of(
                &KeyValue::Text("00000000-0000-0000-0000-000000000000".into()),
                2
            ),
            Ok(0)
        );
    }
}
