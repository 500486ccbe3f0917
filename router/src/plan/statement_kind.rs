//! Statements the planner does not analyze: session and transaction statements run
//! on any one shard (the data plane handles them itself), DDL and maintenance on
//! every shard, and statements whose effect cannot be placed are refused.

use super::error::{unsupported, PlanError};
use super::spec::{ResultMerge, ShardPlan, ShardStatements, ShardTarget};
use super::template::any_one;
use sqlparser::ast::Statement;

/// The plan of a statement that touches no table rows, or the refusal.
pub(crate) fn utility_plan(statement: &Statement) -> Result<ShardPlan, PlanError> {
    match statement {
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Set(_)
        | Statement::Reset(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. }
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Close { .. } => Ok(any_one()),
        Statement::Prepare { .. } | Statement::Execute { .. } => Err(unsupported(
            "PREPARE and EXECUTE are not supported on a sharded database; use the extended query protocol (Parse/Bind) instead",
        )),
        Statement::Declare { .. } | Statement::Fetch { .. } => Err(unsupported(
            "cursors (DECLARE, FETCH) are not supported on a sharded database; SELECT with LIMIT and OFFSET or keyset pagination instead",
        )),
        Statement::Call(_) => Err(unsupported(
            "CALL runs a procedure whose effects cannot be placed on shards; run it on one shard with /* pgshard: shard=N */",
        )),
        Statement::Merge { .. } => Err(unsupported(
            "MERGE is not supported on a sharded database; use INSERT … ON CONFLICT or separate UPDATE and INSERT statements",
        )),
        _ => Ok(ShardPlan {
            target: ShardTarget::All,
            statements: ShardStatements::Original,
            merge: ResultMerge::Same,
        }),
    }
}
