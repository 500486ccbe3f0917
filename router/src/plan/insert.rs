//! Plans for INSERT: the rows of a sharded table go to the shards their keys name,
//! split into one INSERT per shard when they differ; a replicated table gets the
//! INSERT on every shard.

use super::error::{unsupported, PlanError};
use super::input::BoundParams;
use super::key::{KeySource, KeySpace};
use super::names::{is_catalog, last, quoted};
use super::printing::print_checked;
use super::reads::Reads;
use super::renumber::renumber;
use super::schema::{ShardSchema, ShardedTable};
use super::spec::{ResultMerge, ShardPlan, ShardStatement, ShardStatements, ShardTarget};
use super::template::{on_shard, Template};
use crate::sharding::KeyType;
use sqlparser::ast::{
    AssignmentTarget, Insert, OnConflictAction, OnInsert, SetExpr, Statement, TableObject, Values,
};

/// An INSERT into a sharded table (see [`Template::Insert`]).
#[derive(Debug)]
pub(crate) struct InsertSplit {
    key_type: KeyType,
    /// Each VALUES row's key.
    rows: Vec<KeySource>,
    /// The client's statement, to split.
    insert: Insert,
    returning: bool,
    /// ON CONFLICT DO NOTHING: a row may return nothing.
    do_nothing: bool,
    /// Whether the statement prints faithfully, so that it can be split.
    printable: Result<(), PlanError>,
}

/// The template of an INSERT.
pub(crate) fn plan(schema: &ShardSchema, insert: &Insert) -> Result<Template, PlanError> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(unsupported("INSERT INTO a table function is not supported"));
    };
    let mut reads = Reads::new(schema);
    reads.visit(&insert.source)?;
    reads.visit(&insert.on)?;
    reads.visit(&insert.returning)?;
    let table = last(name);
    let everywhere = Template::Fixed(ShardPlan {
        target: ShardTarget::All,
        statements: ShardStatements::Original,
        merge: ResultMerge::Same,
    });
    if is_catalog(name) {
        return Ok(everywhere);
    }
    let reads_sharded = !reads.occurrences.is_empty();
    if let Some(sharded) = schema.sharded(&table) {
        if reads_sharded {
            return Err(unsupported(format!(
                "INSERT into sharded table {} from a query or subquery reading sharded tables is not supported; read the rows first and INSERT … VALUES them",
                quoted(&sharded.name)
            )));
        }
        return split(sharded, insert).map(|split| Template::Insert(Box::new(split)));
    }
    if schema.is_replicated(&table) {
        if reads_sharded {
            return Err(unsupported(
                "a change to a replicated table that reads sharded tables would differ from shard to shard; read the sharded rows first and write constants",
            ));
        }
        return Ok(everywhere);
    }
    Err(unsupported(format!(
        "table {} is neither sharded nor replicated in database {}; add it to sharded_tables or replicated_tables",
        quoted(&table),
        quoted(schema.database())
    )))
}

fn split(table: &ShardedTable, insert: &Insert) -> Result<InsertSplit, PlanError> {
    if insert.columns.is_empty() && values_of(insert).is_some() {
        if let TableObject::TableName(name) = &insert.table {
            if name.0.len() <= 2 {
                return Err(PlanError::ColumnsNeeded {
                    table: name.to_string(),
                });
            }
        }
    }
    let Some(key_index) = insert.columns.iter().position(|c| last(c) == table.column) else {
        return Err(unsupported(format!(
            "INSERT into sharded table {} must name its shard key column \"{}\"",
            quoted(&table.name),
            table.column
        )));
    };
    let Some(values) = values_of(insert) else {
        return Err(select_refusal(table));
    };
    let mut rows = Vec::with_capacity(values.rows.len());
    for row in &values.rows {
        let source = match row.content.get(key_index) {
            Some(expr) => KeySource::from_expr(table.key_type, expr)?,
            None => None,
        };
        rows.push(source.ok_or_else(|| {
            unsupported(format!(
                "the shard key \"{}\" of an INSERT into {} must be a constant or a parameter (not DEFAULT or an expression)",
                table.column,
                quoted(&table.name)
            ))
        })?);
    }
    let mut do_nothing = false;
    match &insert.on {
        None => {}
        Some(OnInsert::OnConflict(conflict)) => match &conflict.action {
            OnConflictAction::DoNothing => do_nothing = true,
            OnConflictAction::DoUpdate(update) => {
                let sets_key = update.assignments.iter().any(|a| match &a.target {
                    AssignmentTarget::ColumnName(name) => last(name) == table.column,
                    AssignmentTarget::Tuple(names) => names.iter().any(|n| last(n) == table.column),
                });
                if sets_key {
                    return Err(unsupported(format!(
                        "ON CONFLICT DO UPDATE of the shard key {}.{} is not supported: the row would have to move to another shard",
                        quoted(&table.name),
                        table.column
                    )));
                }
            }
        },
        Some(_) => return Err(unsupported("ON DUPLICATE KEY UPDATE is not PostgreSQL")),
    }
    Ok(InsertSplit {
        key_type: table.key_type,
        rows,
        insert: insert.clone(),
        returning: insert.returning.is_some(),
        do_nothing,
        printable: print_checked(&Statement::Insert(insert.clone())).map(drop),
    })
}

/// The VALUES list the rows come from, when they come from a plain one.
pub(crate) fn values_of(insert: &Insert) -> Option<&Values> {
    let query = insert.source.as_ref()?;
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    match query.body.as_ref() {
        SetExpr::Values(values) => Some(values),
        _ => None,
    }
}

fn select_refusal(table: &ShardedTable) -> PlanError {
    unsupported(format!(
        "INSERT into sharded table {} takes VALUES rows only (no INSERT … SELECT or DEFAULT VALUES); insert the rows with VALUES",
        quoted(&table.name)
    ))
}

impl InsertSplit {
    /// The plan for the bound parameters.
    pub fn resolve(
        &self,
        schema: &ShardSchema,
        params: Option<&BoundParams>,
    ) -> Result<ShardPlan, PlanError> {
        let space = KeySpace {
            key_type: self.key_type,
            function: schema.function(self.key_type)?,
            shards: schema.shards(),
        };
        let mut row_shards = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            match row.value(self.key_type, params)? {
                Some(value) => row_shards.push(space.shard_of(&value)?),
                // Describe before Bind: the keys are unknown.
                None => {
                    return Ok(ShardPlan {
                        target: ShardTarget::All,
                        statements: ShardStatements::Original,
                        merge: ResultMerge::Counts,
                    })
                }
            }
        }
        let mut shards = row_shards.clone();
        shards.sort_unstable();
        shards.dedup();
        if let [shard] = shards.as_slice() {
            return Ok(on_shard(*shard));
        }
        self.printable.clone()?;
        if self.returning && self.do_nothing {
            return Err(unsupported(
                "INSERT … ON CONFLICT DO NOTHING RETURNING with rows for several shards is not supported: the returned rows could not be matched to the VALUES rows; insert each shard's rows separately",
            ));
        }
        let statements = shards
            .iter()
            .map(|&shard| self.statement_for(shard, &row_shards))
            .collect();
        let merge = if self.returning {
            ResultMerge::InsertReturning { row_shards }
        } else {
            ResultMerge::Counts
        };
        Ok(ShardPlan {
            target: ShardTarget::Shards(shards),
            statements: ShardStatements::PerShard(statements),
            merge,
        })
    }

    /// The INSERT of the rows that go to `shard`.
    fn statement_for(&self, shard: usize, row_shards: &[usize]) -> ShardStatement {
        let mut insert = self.insert.clone();
        if let Some(query) = insert.source.as_mut() {
            if let SetExpr::Values(values) = query.body.as_mut() {
                let mut shard_of_row = row_shards.iter();
                values
                    .rows
                    .retain(|_| shard_of_row.next().is_some_and(|&s| s == shard));
            }
        }
        let mut statement = Statement::Insert(insert);
        let params = renumber(&mut statement);
        ShardStatement {
            shard,
            sql: statement.to_string(),
            params,
        }
    }
}
