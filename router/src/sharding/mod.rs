//! Which shard holds a row: shard keys and the functions that map them to shards.
//!
//! A sharded table's key column has a [`KeyType`]; a key in a statement is read into
//! a [`KeyValue`] from an SQL constant ([`KeyValue::from_sql`]) or a Bind parameter
//! ([`KeyValue::from_parameter`]), and the database's [`ShardingFunction`] maps it to
//! a shard index:
//!
//! - `hash`: exactly the partition PostgreSQL 15's `PARTITION BY HASH` chooses with
//!   `MODULUS` = the number of shards ([`hash_partition`]);
//! - `ring`: consistent hashing over the same hash ([`Ring`]);
//! - `range` and `list`: the operator's own placement ([`RangeMap`], [`ListMap`]),
//!   where a key nobody owns is an error, never a guess.
//!
//! This is pure logic: routing statements by these results is the data plane's job.

mod error;
mod function;
mod integer;
mod key_type;
mod key_value;
mod list;
pub(crate) mod literal;
mod lookup3;
mod parameter;
mod partition_hash;
#[cfg(test)]
mod pg15_vectors;
mod range;
mod ring;

pub use error::ShardingError;
pub use function::ShardingFunction;
pub use key_type::KeyType;
pub use key_value::KeyValue;
pub use list::ListMap;
pub use parameter::ParamFormat;
pub use partition_hash::{hash_partition, partition_hash, HASH_PARTITION_SEED};
pub use range::{KeyRange, RangeMap};
pub use ring::Ring;
