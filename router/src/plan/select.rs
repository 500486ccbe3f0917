//! Plans for queries: one shard when the keys confine every sharded table to it, a
//! merged fan-out otherwise.

use super::error::{unsupported, PlanError};
use super::reads::Reads;
use super::routing::{name_keys, routed, spread_shape};
use super::schema::ShardSchema;
use super::sequences::calls_setval;
use super::spec::{ResultMerge, ShardPlan, ShardStatements, ShardTarget};
use super::spread;
use super::template::{any_one, Template};
use sqlparser::ast::Query;

/// The template of a query statement.
pub(crate) fn plan(schema: &ShardSchema, query: &Query) -> Result<Template, PlanError> {
    let mut reads = Reads::new(schema);
    reads.query(query)?;
    let sets_sequences = calls_setval(query);
    if reads.occurrences.is_empty() {
        // Replicated tables, catalogs or no table at all: every shard has it all, and
        // computes the same value for each copy of a sequence it sets.
        return Ok(Template::Fixed(if sets_sequences {
            ShardPlan {
                target: ShardTarget::All,
                statements: ShardStatements::Original,
                merge: ResultMerge::Same,
            }
        } else {
            any_one()
        }));
    }
    if sets_sequences {
        return Err(unsupported(
            "setval() over sharded tables would set each shard's copy of the sequence from that shard's rows alone; compute the value first (e.g. SELECT max(id) FROM t), then SELECT setval('sequence', value), which sets it on every shard",
        ));
    }
    let spread = spread_shape(&reads, reads.top_scope)
        .and_then(|()| {
            let scope = reads.top_scope.unwrap_or_default();
            spread::select(query, &reads, scope)
        })
        .map_err(|error| name_keys(error, &reads));
    Ok(routed(&reads, spread))
}
