//! Plans for statements of a sharded database: which shards run them and how their
//! answers are merged ([`ShardPlan`]).
//!
//! [`Planner::plan`] reads one statement against the database's [`ShardSchema`] (its
//! sharded and replicated tables and sharding function), finds the shard key in it (or
//! in the Bind parameters), and either names the shards, rewrites a fan-out query so
//! that the per-shard answers can be merged exactly, or refuses with
//! [`PlanError::Unsupported`] (SQLSTATE 0A000) when no exact merge exists.
//!
//! The analysis of a statement text is cached as a template whose keys are literals
//! or parameter numbers; each execution only resolves the parameters.

mod analyze;
mod array_param;
mod column_list;
mod copy;
mod copy_row;
mod error;
mod input;
mod insert;
mod key;
mod large_objects;
mod literals;
mod modify;
pub(crate) mod names;
mod planner;
mod printing;
mod reads;
mod renumber;
mod routing;
mod schema;
mod select;
mod sequences;
mod spec;
mod spread;
mod statement_kind;
mod template;
mod template_cache;
#[cfg(test)]
mod tests;
mod unreadable;

pub use crate::sharding::ParamFormat;
pub use column_list::{columns_query, name_columns};
pub use copy_row::{copy_key_field, copy_row_end, is_copy_end_marker, CopyRowScanner};
pub use error::{PlanError, RowCountError};
pub use input::{BoundParams, PlanInput};
pub use planner::Planner;
pub use schema::ShardSchema;
pub use spec::{
    Aggregate, AggregateKind, ArithmeticOp, CastTarget, ColumnRef, CompareOp, ComputedColumn,
    Constant, CopyFormat, CopySplit, Grouping, NumericFunction, NumericTypmod, Predicate,
    ResultMerge, RowMerge, ShardPlan, ShardStatement, ShardStatements, ShardTarget, SortKey,
    ValueExpr,
};
