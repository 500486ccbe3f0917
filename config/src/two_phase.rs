//! `two_phase_commit` of `[[databases]]`: whether a transaction that wrote on several
//! shards commits atomically, with PostgreSQL's two-phase commit.

use serde::Deserialize;

/// How a sharded database commits a transaction that wrote on several shards.
///
/// `auto` costs one more round trip per written shard at such a commit and needs
/// `max_prepared_transactions` above 0 on every server; `off` is for servers where that
/// cannot be set, and accepts that a failure during COMMIT may leave some shards
/// committed and others not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwoPhaseCommit {
    /// Two-phase commit whenever a transaction wrote on more than one shard; a
    /// transaction that wrote on one shard keeps a plain COMMIT.
    #[default]
    Auto,
    /// Every shard commits on its own, one after another.
    Off,
}
