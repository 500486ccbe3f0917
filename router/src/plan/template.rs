//! The cached analysis of a statement text, and its resolution into a plan once the
//! parameters are known.

use super::error::{unsupported, PlanError, RowCountError};
use super::input::BoundParams;
use super::insert::InsertSplit;
use super::key::{KeyCond, KeySpace, ShardSet};
use super::schema::ShardSchema;
use super::spec::{ResultMerge, RowMerge, ShardPlan, ShardStatements, ShardTarget};
use crate::sharding::KeyType;

/// What a statement text means for sharding, independent of its parameters.
#[derive(Debug)]
pub(crate) enum Template {
    /// The same plan whatever the parameters.
    Fixed(ShardPlan),
    /// No plan: the error whatever the parameters.
    Refused(PlanError),
    /// Reads or changes sharded tables: where it runs depends on their keys.
    Routed(Routed),
    /// An INSERT into a sharded table, split by the rows' keys.
    Insert(Box<InsertSplit>),
    /// EXPLAIN [ANALYZE] of a statement: one server's plan.
    Explain { inner: Box<Template>, analyze: bool },
}

/// A statement over sharded tables (see [`Template::Routed`]).
#[derive(Debug)]
pub(crate) struct Routed {
    /// Occurrences of sharded tables linked by key equalities: each group sees rows of
    /// one key at a time, so one shard answers for it.
    pub groups: Vec<Group>,
    /// How the statement runs when it is not confined to one shard, or why it cannot.
    pub spread: Result<Spread, PlanError>,
    /// Some key is a parameter.
    pub has_params: bool,
}

/// Linked occurrences of sharded tables.
#[derive(Debug)]
pub(crate) struct Group {
    pub members: Vec<Member>,
}

/// One occurrence's key type and the conditions on its key.
#[derive(Debug)]
pub(crate) struct Member {
    pub key_type: KeyType,
    pub conds: Vec<KeyCond>,
}

/// A statement sent to several shards, and how their answers merge.
#[derive(Debug)]
pub(crate) struct Spread {
    pub statements: ShardStatements,
    pub merge: SpreadMerge,
}

/// How the answers of a spread statement merge.
#[derive(Debug)]
pub(crate) enum SpreadMerge {
    /// Rows; limit and offset are read from the parameters when they are ones.
    Rows {
        merge: Box<RowMerge>,
        limit: Option<RowCount>,
        offset: Option<RowCount>,
    },
    Counts,
}

/// A LIMIT or OFFSET count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowCount {
    Value(i64),
    Param(usize),
}

impl Template {
    /// The plan for one execution.
    pub fn resolve(
        &self,
        schema: &ShardSchema,
        params: Option<&BoundParams>,
    ) -> Result<ShardPlan, PlanError> {
        match self {
            Template::Fixed(plan) => Ok(plan.clone()),
            Template::Refused(error) => Err(error.clone()),
            Template::Routed(routed) => routed.resolve(schema, params),
            Template::Insert(split) => split.resolve(schema, params),
            Template::Explain { inner, analyze } => {
                explain(inner.resolve(schema, params)?, *analyze)
            }
        }
    }
}

/// EXPLAIN shows one server's plan: that of the one shard the statement runs on, or
/// any shard's for statements every shard runs alike (with ANALYZE, which runs the
/// statement, every shard runs it).
fn explain(plan: ShardPlan, analyze: bool) -> Result<ShardPlan, PlanError> {
    match (&plan.target, &plan.merge) {
        (ShardTarget::Shards(shards), _) if shards.len() == 1 => Ok(on_shard(shards[0])),
        (ShardTarget::AnyOne, _) => Ok(any_one()),
        (ShardTarget::All, ResultMerge::Same) if !analyze => Ok(any_one()),
        (ShardTarget::All, ResultMerge::Same) => Ok(ShardPlan {
            statements: ShardStatements::Original,
            ..plan
        }),
        _ => Err(unsupported(
            "EXPLAIN of a statement spanning several shards has no single plan; filter on the shard key, or explain it on one shard with /* pgshard: shard=N */",
        )),
    }
}

/// A plan running the client's statement on one shard.
pub(crate) fn on_shard(shard: usize) -> ShardPlan {
    ShardPlan {
        target: ShardTarget::Shards(vec![shard]),
        statements: ShardStatements::Original,
        merge: ResultMerge::PassThrough,
    }
}

/// A plan running the client's statement on any one shard.
pub(crate) fn any_one() -> ShardPlan {
    ShardPlan {
        target: ShardTarget::AnyOne,
        statements: ShardStatements::Original,
        merge: ResultMerge::PassThrough,
    }
}

impl Group {
    /// The shards this group's rows can be on; `None` when unrestricted or unknown.
    fn shards(
        &self,
        schema: &ShardSchema,
        params: Option<&BoundParams>,
    ) -> Result<Option<ShardSet>, PlanError> {
        let mut result: Option<ShardSet> = None;
        for member in &self.members {
            let space = KeySpace {
                key_type: member.key_type,
                function: schema.function(member.key_type)?,
                shards: schema.shards(),
            };
            for cond in &member.conds {
                if let Some(set) = cond.shards(space, params)? {
                    result = Some(match result {
                        None => set,
                        Some(acc) => acc.intersection(&set).copied().collect(),
                    });
                }
            }
        }
        Ok(result)
    }
}

impl Routed {
    fn resolve(
        &self,
        schema: &ShardSchema,
        params: Option<&BoundParams>,
    ) -> Result<ShardPlan, PlanError> {
        let sets = self
            .groups
            .iter()
            .map(|group| group.shards(schema, params))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(shard) = single_shard(&sets) {
            return Ok(on_shard(shard));
        }
        let spread = match &self.spread {
            Ok(spread) => spread,
            // Describe before Bind: the keys are unknown but any shard describes it.
            Err(_) if params.is_none() && self.has_params => return Ok(any_one()),
            Err(error) => return Err(error.clone()),
        };
        let target = match sets.as_slice() {
            [Some(set)] => ShardTarget::Shards(set.iter().copied().collect()),
            _ => ShardTarget::All,
        };
        let merge = match &spread.merge {
            SpreadMerge::Counts => ResultMerge::Counts,
            SpreadMerge::Rows {
                merge,
                limit,
                offset,
            } => {
                let mut merge = RowMerge::clone(merge);
                merge.limit = count(*limit, params, RowCountError::NegativeLimit)?;
                merge.offset = count(*offset, params, RowCountError::NegativeOffset)?.unwrap_or(0);
                ResultMerge::Rows(merge)
            }
        };
        Ok(ShardPlan {
            target,
            statements: spread.statements.clone(),
            merge,
        })
    }
}

/// The one shard every group is confined to, if there is one. A group whose
/// conditions exclude every row (`id = 1 AND id = 2` on different shards) fits any.
fn single_shard(sets: &[Option<ShardSet>]) -> Option<usize> {
    let mut shard = None;
    for set in sets {
        let set = set.as_ref()?;
        match set.len() {
            0 => {}
            1 => {
                let only = set.first().copied()?;
                if shard.is_some_and(|s| s != only) {
                    return None;
                }
                shard = Some(only);
            }
            _ => return None,
        }
    }
    Some(shard.unwrap_or(0))
}

/// A LIMIT or OFFSET value; `None` for no limit (NULL, or a parameter before Bind).
fn count(
    count: Option<RowCount>,
    params: Option<&BoundParams>,
    negative: RowCountError,
) -> Result<Option<u64>, PlanError> {
    let value = match count {
        None => None,
        Some(RowCount::Value(value)) => Some(value),
        Some(RowCount::Param(index)) => match params {
            Some(params) => params.row_count(index)?,
            None => None,
        },
    };
    value
        .map(|v| u64::try_from(v).map_err(|_| PlanError::RowCount(negative)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_only_when_every_group_agrees() {
        let set = |s: &[usize]| Some(s.iter().copied().collect::<ShardSet>());
        assert_eq!(single_shard(&[set(&[1]), set(&[1])]), Some(1));
        assert_eq!(single_shard(&[set(&[1]), set(&[2])]), None);
        assert_eq!(single_shard(&[set(&[1]), None]), None);
        assert_eq!(single_shard(&[set(&[1, 2])]), None);
        assert_eq!(single_shard(&[set(&[]), set(&[2])]), Some(2));
        assert_eq!(single_shard(&[set(&[])]), Some(0));
    }
}
