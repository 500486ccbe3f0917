//! The planner: statement text and parameters in, [`ShardPlan`] out.

use super::analyze::analyze;
use super::error::PlanError;
use super::input::PlanInput;
use super::schema::ShardSchema;
use super::spec::ShardPlan;
use super::template::{any_one, on_shard};
use super::template_cache::TemplateCache;
use crate::hint::{hints_from_comments, leading_comments};
use std::sync::Arc;

/// Plans statements of one sharded database; shared by all its sessions.
pub struct Planner {
    schema: ShardSchema,
    cache: TemplateCache,
}

impl Planner {
    /// A planner for `schema` that remembers the analysis of up to `cache_capacity`
    /// statement texts (0: none).
    pub fn new(schema: ShardSchema, cache_capacity: usize) -> Planner {
        Planner {
            schema,
            cache: TemplateCache::new(cache_capacity),
        }
    }

    pub fn schema(&self) -> &ShardSchema {
        &self.schema
    }

    /// Plans ONE statement (split simple-query strings with
    /// [`crate::split_statements`]), possibly opened by `/* pgshard: … */` comments.
    ///
    /// A `shard=N` hint, or else `input.shard_override`, sends the statement unchanged
    /// to that shard without looking at it. Otherwise the statement's keys (from its
    /// text or `input.params`) choose the shards; without parameters (Describe before
    /// Bind) a plan that describes the statement correctly is returned.
    pub fn plan(&self, statement: &str, input: &PlanInput) -> Result<ShardPlan, PlanError> {
        let (comments, body) = leading_comments(statement);
        let hints = hints_from_comments(&comments)?;
        if let Some(shard) = hints.shard.or(input.shard_override) {
            let shards = self.schema.shards();
            if shard >= shards {
                return Err(PlanError::NoSuchShard { shard, shards });
            }
            return Ok(on_shard(shard));
        }
        if is_settings_statement(body) {
            // Every grammar form of SET and RESET runs on any one shard, the session
            // replaying it on the others; PostgreSQL's grammar, not the SQL parser's,
            // decides what is valid.
            return Ok(any_one());
        }
        let template = match self.cache.get(body) {
            Some(template) => template,
            None => {
                let template = Arc::new(analyze(&self.schema, body));
                self.cache.insert(body, Arc::clone(&template));
                template
            }
        };
        template.resolve(&self.schema, input.params.as_ref())
    }

    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// `SET …` or `RESET …` that changes a session setting (not `SET LOCAL`, `SET TRANSACTION`
/// or `SET CONSTRAINTS`, which the SQL parser plans as it does other statements).
fn is_settings_statement(body: &str) -> bool {
    let word = body
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    if !(word.eq_ignore_ascii_case("set") || word.eq_ignore_ascii_case("reset")) {
        return false;
    }
    matches!(
        crate::session_effect(body),
        crate::SessionEffect::Set { .. }
            | crate::SessionEffect::Reset { .. }
            | crate::SessionEffect::ResetAll
    )
}
