//! From the sharded tables a statement reads to a routed template: the groups whose
//! keys decide the shards, and whether the statement may span several shards.

use super::error::{unsupported, PlanError, FILTER_ON_KEY};
use super::names::quoted;
use super::reads::Reads;
use super::template::{Group, Member, Routed, Spread, Template};

/// The template of a statement over sharded tables, with its plan for several shards
/// (or the reason it has none).
pub(crate) fn routed(reads: &Reads, spread: Result<Spread, PlanError>) -> Template {
    let groups: Vec<Group> = reads
        .groups()
        .into_iter()
        .map(|members| Group {
            members: members
                .into_iter()
                .map(|o| Member {
                    key_type: reads.occurrences[o].table.key_type,
                    conds: reads.occurrences[o].conds.clone(),
                })
                .collect(),
        })
        .collect();
    let has_params = groups
        .iter()
        .flat_map(|g| &g.members)
        .flat_map(|m| &m.conds)
        .any(|c| c.has_params());
    Template::Routed(Routed {
        groups,
        spread,
        has_params,
    })
}

/// Checks that the statement's sharded tables can be answered shard by shard: linked
/// on their keys into one group that includes a table of its top-level FROM
/// (`scope`); subqueries may read sharded tables only through such links (a
/// correlation `o.user_id = u.id`, or `u.id IN (SELECT o.user_id …)`). No outer join
/// may keep the unmatched rows of an unsharded side.
pub(crate) fn spread_shape(reads: &Reads, scope: Option<usize>) -> Result<(), PlanError> {
    let groups = reads.groups();
    let linked_to_top = |group: &[usize]| {
        group
            .iter()
            .any(|&o| Some(reads.occurrences[o].scope) == scope)
    };
    let nested = reads.occurrences.iter().any(|o| Some(o.scope) != scope);
    if nested && (groups.len() > 1 || !groups.iter().all(|g| linked_to_top(g))) {
        let tables = reads
            .occurrences
            .iter()
            .filter(|o| Some(o.scope) != scope)
            .map(|o| quoted(&o.table.name))
            .collect::<Vec<_>>();
        return Err(unsupported(format!(
            "subqueries, CTEs and set operations (UNION, INTERSECT, EXCEPT) reading sharded tables ({}) cannot be merged across several shards unless correlated on the shard key (o.user_id = u.id); filter every sharded table on its shard key so that the statement runs on one shard",
            dedup(tables).join(", ")
        )));
    }
    if groups.len() > 1 {
        let names: Vec<String> = groups
            .iter()
            .map(|g| {
                let o = &reads.occurrences[g[0]];
                format!("{}.{}", quoted(&o.table.name), o.table.column)
            })
            .collect();
        return Err(unsupported(format!(
            "sharded tables joined other than on their shard keys ({}) span several shards; join them on equal shard keys (e.g. a.id = b.user_id) or filter on the shard key to run on one shard",
            dedup(names).join(", ")
        )));
    }
    if reads.preserved_unsharded {
        return Err(unsupported(
            "an outer join keeping unmatched rows of a replicated table or subquery against a sharded table would return them once per shard; put the sharded table on the preserved side, or filter on its shard key to run on one shard",
        ));
    }
    Ok(())
}

/// Names the statement's shard keys in a refusal's advice: `filter on the shard key
/// "id" to run on one shard`.
pub(crate) fn name_keys(error: PlanError, reads: &Reads) -> PlanError {
    let PlanError::Unsupported(message) = error else {
        return error;
    };
    let keys = dedup(
        reads
            .occurrences
            .iter()
            .map(|o| format!("\"{}\" of {}", o.table.column, quoted(&o.table.name)))
            .collect(),
    );
    let advice = match keys.as_slice() {
        [] => FILTER_ON_KEY.to_string(),
        [_] => format!(
            "filter on the shard key \"{}\" to run on one shard",
            reads.occurrences[0].table.column
        ),
        _ => format!(
            "filter on the shard keys ({}) to run on one shard",
            keys.join(", ")
        ),
    };
    PlanError::Unsupported(message.replace(FILTER_ON_KEY, &advice))
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    let mut seen = Vec::new();
    names.retain(|n| {
        let new = !seen.contains(n);
        seen.push(n.clone());
        new
    });
    names
}
