//! Plans for UPDATE and DELETE: on the shards their keys name, on every shard of a
//! sharded table otherwise, and everywhere for a replicated table.

use super::error::{unsupported, PlanError};
use super::names::{is_catalog, last, quoted};
use super::reads::Reads;
use super::routing::{name_keys, routed, spread_shape};
use super::schema::ShardSchema;
use super::spec::{ResultMerge, ShardPlan, ShardStatements, ShardTarget};
use super::template::{Spread, SpreadMerge, Template};
use sqlparser::ast::{
    AssignmentTarget, Delete, FromTable, TableFactor, TableWithJoins, Update, UpdateTableFromKind,
};

/// The template of an UPDATE.
pub(crate) fn update(schema: &ShardSchema, update: &Update) -> Result<Template, PlanError> {
    let from: &[TableWithJoins] = match &update.from {
        Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) => from,
        None => &[],
    };
    let tables: Vec<&TableWithJoins> = std::iter::once(&update.table).chain(from).collect();
    let mut reads = Reads::new(schema);
    let scope = reads.open_scope(&tables, update.selection.as_ref())?;
    reads.visit(&update.table)?;
    reads.visit(&update.from)?;
    reads.visit(&update.assignments)?;
    reads.visit(&update.selection)?;
    reads.visit(&update.returning)?;
    reads.close_scope();
    if let Some(table) = target_table(&update.table).and_then(|t| schema.sharded(&t)) {
        for assignment in &update.assignments {
            let columns = match &assignment.target {
                AssignmentTarget::ColumnName(name) => vec![name],
                AssignmentTarget::Tuple(names) => names.iter().collect(),
            };
            if columns.iter().any(|name| last(name) == table.column) {
                return Err(unsupported(format!(
                    "UPDATE of the shard key {}.{} is not supported: the row would have to move to another shard; DELETE it and INSERT it again",
                    quoted(&table.name),
                    table.column
                )));
            }
        }
    }
    changes(&reads, scope, &update.table)
}

/// The template of a DELETE.
pub(crate) fn delete(schema: &ShardSchema, delete: &Delete) -> Result<Template, PlanError> {
    if !delete.tables.is_empty() {
        return Err(unsupported("DELETE of several tables is not PostgreSQL"));
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    let Some(target) = from.first() else {
        return Err(unsupported("DELETE without a table"));
    };
    let using = delete.using.as_deref().unwrap_or_default();
    let tables: Vec<&TableWithJoins> = from.iter().chain(using).collect();
    let mut reads = Reads::new(schema);
    let scope = reads.open_scope(&tables, delete.selection.as_ref())?;
    reads.visit(&delete.from)?;
    reads.visit(&delete.using)?;
    reads.visit(&delete.selection)?;
    reads.visit(&delete.returning)?;
    reads.close_scope();
    changes(&reads, scope, target)
}

/// The target table's name, if it is a plain table.
fn target_table(target: &TableWithJoins) -> Option<String> {
    match &target.relation {
        TableFactor::Table { name, .. } if !is_catalog(name) => Some(last(name)),
        _ => None,
    }
}

/// An UPDATE or DELETE of `target`, whose tables `reads` holds.
fn changes(reads: &Reads, scope: usize, target: &TableWithJoins) -> Result<Template, PlanError> {
    // The target is bound first: it is the scope's first occurrence if sharded.
    let target_sharded = target_table(target).is_some_and(|name| {
        reads
            .in_scope(scope)
            .first()
            .is_some_and(|&o| reads.occurrences[o].table.name == name.to_lowercase())
    });
    if !target_sharded {
        if !reads.occurrences.is_empty() {
            return Err(unsupported(
                "a change to a replicated table that reads sharded tables would differ from shard to shard; read the sharded rows first and write constants",
            ));
        }
        // A replicated table (or a catalog): the same change on every shard.
        return Ok(Template::Fixed(ShardPlan {
            target: ShardTarget::All,
            statements: ShardStatements::Original,
            merge: ResultMerge::Same,
        }));
    }
    let spread = spread_shape(reads, Some(scope))
        .map(|()| Spread {
            statements: ShardStatements::Original,
            merge: SpreadMerge::Counts,
        })
        .map_err(|error| name_keys(error, reads));
    Ok(routed(reads, spread))
}
