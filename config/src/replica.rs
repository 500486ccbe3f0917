//! Replica entries of a shard: `"db2:5432"`, or `{ address = "db2:5432", weight = 2 }`
//! to give a replica a larger share of the reads.

use crate::address::NodeAddress;
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A streaming replica of a shard and its share of the shard's reads.
///
/// Weights are relative: a replica with weight 2 gets twice the reads of one with
/// weight 1, e.g. because it runs on a larger machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub address: NodeAddress,
    /// At least 1; default 1.
    pub weight: u32,
    /// Breaks ties between equally advanced failover candidates: higher wins; default 0.
    pub priority: u32,
    /// Never promoted by failover (e.g. a delayed or remote replica); default false.
    pub no_promote: bool,
}

impl ReplicaConfig {
    /// Weight of a replica written as a plain address.
    pub const DEFAULT_WEIGHT: u32 = 1;
}

/// The table form; a separate type so serde reports its unknown and missing keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaTable {
    address: NodeAddress,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    no_promote: bool,
}

fn default_weight() -> u32 {
    ReplicaConfig::DEFAULT_WEIGHT
}

impl<'de> Deserialize<'de> for ReplicaConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReplicaVisitor)
    }
}

/// Accepts both forms of a replica entry, so a string keeps its precise address error
/// instead of serde's "did not match any variant" for untagged enums.
struct ReplicaVisitor;

impl<'de> Visitor<'de> for ReplicaVisitor {
    type Value = ReplicaConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node address such as \"db2:5432\" or a table such as { address = \"db2:5432\", weight = 2 }")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ReplicaConfig, E> {
        Ok(ReplicaConfig {
            address: text.parse().map_err(E::custom)?,
            weight: ReplicaConfig::DEFAULT_WEIGHT,
            priority: 0,
            no_promote: false,
        })
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ReplicaConfig, M::Error> {
        let table = ReplicaTable::deserialize(MapAccessDeserializer::new(map))?;
        Ok(ReplicaConfig {
            address: table.address,
            weight: table.weight,
            priority: table.priority,
            no_promote: table.no_promote,
        })
    }
}
