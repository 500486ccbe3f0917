//! Plans for statements of a sharded database: which shards run them and how their
//! answers are merged ([`ShardPlan`]).
//!
//! [`Planner::plan`] reads one statement against the database's [`ShardSchema`] (its
//! sharded and replicated tables and sharding function), finds the shard key in it (or
//! in the Bind parameters), and either names the shards, rewrites a fan-out query so
//! that the per-shard answers can be merged exactly, or refuses with
//! [`PlanError::Unsupported`] (SQLSTATE 0A000) when no exact merge exists.

mod spec;

pub use spec::{
    Aggregate, AggregateKind, CompareOp, Grouping, Predicate, ResultMerge, RowMerge,
    ShardPlan, ShardStatement, ShardStatements, ShardTarget, SortKey,
};
