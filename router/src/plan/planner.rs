//! The planner: statement text and parameters in, [`ShardPlan`] out.

use super::analyze::analyze;
use super::error::PlanError;
use super::input::{BoundParams, PlanInput};
use super::literals::normalize;
use super::schema::ShardSchema;
use super::spec::{ShardPlan, ShardStatements, ShardTarget};
use super::template::{any_one, on_shard};
use super::template_cache::TemplateCache;
use crate::hint::{hints_from_comments, leading_comments};
use crate::sharding::ParamFormat;
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
    /// to that shard — unless its shard key, read as without the override, puts it
    /// elsewhere: then it is refused, since a row written there would be one the proxy's
    /// own lookups by key never find. Statements the planner cannot read go to shard N
    /// as they are. Otherwise the statement's keys (from its text or `input.params`)
    /// choose the shards; without parameters (Describe before Bind) a plan that
    /// describes the statement correctly is returned.
    pub fn plan(&self, statement: &str, input: &PlanInput) -> Result<ShardPlan, PlanError> {
        let (comments, body) = leading_comments(statement);
        let hints = hints_from_comments(&comments)?;
        if is_two_phase_statement(body) {
            return Err(PlanError::Unsupported(
                "pgshard: PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED are \
                 pgshard's own on a sharded database (its commits across shards use them); \
                 use COMMIT and ROLLBACK"
                    .to_string(),
            ));
        }
        if let Some(shard) = hints.shard.or(input.shard_override) {
            let shards = self.schema.shards();
            if shard >= shards {
                return Err(PlanError::NoSuchShard { shard, shards });
            }
            if let Ok(ShardPlan {
                target: ShardTarget::Shards(keyed),
                ..
            }) = self.plan(
                body,
                &PlanInput {
                    params: input.params,
                    shard_override: None,
                },
            ) {
                if keyed != [shard] {
                    return Err(PlanError::OverrideMisplaces { shard, keyed });
                }
            }
            return Ok(on_shard(shard));
        }
        if is_settings_statement(body) {
            // Every grammar form of SET and RESET runs on any one shard, the session
            // replaying it on the others; PostgreSQL's grammar, not the SQL parser's,
            // decides what is valid.
            return Ok(any_one());
        }
        if input.params.is_none() {
            if let Some(plan) = self.plan_normalized(body) {
                return plan;
            }
        }
        self.template(body)
            .resolve(&self.schema, input.params.as_ref())
    }

    /// The plan of a text whose compared constants read as parameters: one cached
    /// template serves every text that differs only in them. Used when the statement
    /// goes to its shards as the client wrote it; any other plan (a rewrite for merging,
    /// a split) is made from the text itself.
    fn plan_normalized(&self, body: &str) -> Option<Result<ShardPlan, PlanError>> {
        let normalized = normalize(body)?;
        let values: Vec<Option<&[u8]>> = normalized
            .values
            .iter()
            .map(|v| Some(v.as_bytes()))
            .collect();
        let formats = vec![ParamFormat::Text; values.len()];
        let params = BoundParams {
            values: &values,
            formats: &formats,
        };
        match self
            .template(&normalized.text)
            .resolve(&self.schema, Some(&params))
        {
            Ok(plan) if plan.statements == ShardStatements::Original => Some(Ok(plan)),
            _ => None,
        }
    }

    /// The cached template of `body`, analyzed on first use.
    fn template(&self, body: &str) -> Arc<super::template::Template> {
        match self.cache.get(body) {
            Some(template) => template,
            None => {
                let template = Arc::new(analyze(&self.schema, body));
                self.cache.insert(body, Arc::clone(&template));
                template
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// `PREPARE TRANSACTION`, `COMMIT PREPARED` or `ROLLBACK PREPARED`, whatever the case
/// and spacing.
fn is_two_phase_statement(body: &str) -> bool {
    let mut words = body
        .split(|c: char| c.is_ascii_whitespace() || c == ';')
        .filter(|w| !w.is_empty());
    let (Some(first), Some(second)) = (words.next(), words.next()) else {
        return false;
    };
    let is = |word: &str, expected: &str| word.eq_ignore_ascii_case(expected);
    (is(first, "prepare") && is(second, "transaction"))
        || ((is(first, "commit") || is(first, "rollback"))
            && second.get(..8).is_some_and(|w| is(w, "prepared")))
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
