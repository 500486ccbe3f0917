//! Which shard holds a row: shard keys and the functions that map them to shards.
//!
//! A sharded table's key column has a [`KeyType`]; a key in a statement is read into
//! a [`KeyValue`] from an SQL constant ([`KeyValue::from_sql`]) or a Bind parameter
//! ([`KeyValue::from_parameter`]), and [`hash_partition`] gives exactly the partition
//! PostgreSQL 15's `PARTITION BY HASH` chooses for it.
//!
//! This is pure logic: routing statements by these results is the data plane's job.

mod error;
mod integer;
mod key_type;
mod key_value;
mod literal;
mod lookup3;
mod parameter;
mod partition_hash;
#[cfg(test)]
mod pg15_vectors;

pub use error::ShardingError;
pub use key_type::KeyType;
pub use key_value::KeyValue;
pub use parameter::ParamFormat;
pub use partition_hash::{hash_partition, partition_hash, HASH_PARTITION_SEED};
