//! Consistent hashing: shards own arcs of a ring of 64-bit hashes.

use super::lookup3::hash_bytes_extended;
use super::partition_hash::{partition_hash, HASH_PARTITION_SEED};
use super::{KeyValue, ShardingError};

/// A ring with `virtual_nodes` points per shard; a key belongs to the shard of the
/// first point at or after its hash, wrapping around past the largest point.
///
/// Unlike a remainder, adding a shard only moves the keys the new shard's points
/// take over, about 1/(N+1) of them, all onto the new shard; many points per shard
/// keep the arcs, and so the load, even. Point positions depend only on the shard
/// index and point number, and keys are placed by [`partition_hash`], so placement
/// is stable across restarts and proxies. Changing either would move data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    shards: usize,
    virtual_nodes: u32,
    /// Sorted by position, then shard, so equal positions resolve the same way
    /// everywhere.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds the ring for `shards` shards; `virtual_nodes` is at least 1.
    pub fn new(shards: usize, virtual_nodes: u32) -> Ring {
        let virtual_nodes = virtual_nodes.max(1);
        let mut points: Vec<(u64, usize)> = (0..shards)
            .flat_map(|shard| (0..virtual_nodes).map(move |point| (position(shard, point), shard)))
            .collect();
        points.sort_unstable();
        Ring {
            shards,
            virtual_nodes,
            points,
        }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    pub fn virtual_nodes(&self) -> u32 {
        self.virtual_nodes
    }

    /// The shard owning `value`'s hash; a NULL key hashes to 0 as in hash partitioning.
    pub fn shard_of(&self, value: &KeyValue) -> Result<usize, ShardingError> {
        self.shard_of_hash(partition_hash(value))
    }

    /// The shard owning the ring position `hash`.
    pub fn shard_of_hash(&self, hash: u64) -> Result<usize, ShardingError> {
        let next = self
            .points
            .partition_point(|&(position, _)| position < hash);
        let (_, shard) = self
            .points
            .get(next)
            .or_else(|| self.points.first())
            .ok_or(ShardingError::NoShards)?;
        Ok(*shard)
    }
}

/// Where point `point` of shard `shard` sits: lookup3 over the two numbers as
/// little-endian 32-bit words.
fn position(shard: usize, point: u32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&(shard as u32).to_le_bytes());
    bytes[4..].copy_from_slice(&point.to_le_bytes());
    hash_bytes_extended(&bytes, HASH_PARTITION_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: i64 = 100_000;

    fn shards_of(ring: &Ring) -> Vec<usize> {
        (0..KEYS)
            .map(|key| ring.shard_of(&KeyValue::Int(key)).unwrap())
            .collect()
    }

    #[test]
    fn adding_a_shard_moves_about_a_quarter_of_the_keys_all_to_it() {
        let before = shards_of(&Ring::new(3, 256));
        let after = shards_of(&Ring::new(4, 256));
        let moved: Vec<usize> = before
            .iter()
            .zip(&after)
            .filter(|(old, new)| old != new)
            .map(|(_, new)| *new)
            .collect();
        let fraction = moved.len() as f64 / KEYS as f64;
        assert!((0.18..=0.32).contains(&fraction), "moved {fraction}");
        assert!(moved.iter().all(|&shard| shard == 3));
    }

    #[test]
    fn shards_get_even_shares() {
        for shards in [2, 3, 5, 8] {
            let mut counts = vec![0usize; shards];
            for shard in shards_of(&Ring::new(shards, 256)) {
                counts[shard] += 1;
            }
            let fair = KEYS as f64 / shards as f64;
            for count in counts {
                let share = count as f64 / fair;
                assert!((0.8..=1.2).contains(&share), "{shards} shards: {share}");
            }
        }
    }

    #[test]
    fn placement_is_stable() {
        // Part of the on-disk layout: a change here moves data between shards.
        let ring = Ring::new(4, 256);
        let placed: Vec<usize> = (0..8)
            .map(|key| ring.shard_of(&KeyValue::Int(key)).unwrap())
            .collect();
        assert_eq!(placed, STABLE_PLACEMENT);
        assert_eq!(ring.shard_of(&KeyValue::Null), ring.shard_of_hash(0));
    }

    /// Shards of keys 0 to 7 on a 4-shard, 256-point ring.
    const STABLE_PLACEMENT: [usize; 8] = [1, 3, 3, 0, 0, 0, 1, 3];

    #[test]
    fn wraps_around_and_needs_a_shard() {
        let ring = Ring::new(2, 1);
        let last = ring.points.last().unwrap();
        let first = ring.points.first().unwrap();
        assert_eq!(ring.shard_of_hash(last.0), Ok(last.1));
        assert_eq!(ring.shard_of_hash(last.0.wrapping_add(1)), Ok(first.1));
        assert_eq!(ring.shard_of_hash(0), Ok(first.1));
        assert_eq!(
            Ring::new(0, 256).shard_of_hash(5),
            Err(ShardingError::NoShards)
        );
        assert_eq!(Ring::new(3, 0).virtual_nodes(), 1);
    }
}
