//! Plans for queries: one shard when the keys confine every sharded table to it, a
//! merged fan-out otherwise.

use super::error::PlanError;
use super::reads::Reads;
use super::routing::{name_keys, routed, spread_shape};
use super::schema::ShardSchema;
use super::spread;
use super::template::{any_one, Template};
use sqlparser::ast::Query;

/// The template of a query statement.
pub(crate) fn plan(schema: &ShardSchema, query: &Query) -> Result<Template, PlanError> {
    let mut reads = Reads::new(schema);
    reads.query(query)?;
    if reads.occurrences.is_empty() {
        // Replicated tables, catalogs or no table at all: every shard has it all.
        return Ok(Template::Fixed(any_one()));
    }
    let spread = spread_shape(&reads, reads.top_scope)
        .and_then(|()| {
            let scope = reads.top_scope.unwrap_or_default();
            spread::select(query, &reads, scope)
        })
        .map_err(|error| name_keys(error, &reads));
    Ok(routed(&reads, spread))
}
