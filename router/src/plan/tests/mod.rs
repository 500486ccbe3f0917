//! Planner tests over a schema read from a configuration file.

use super::schema::tests::{database, database_with, schema};
use super::*;
use crate::sharding::{hash_partition, KeyValue, ParamFormat};

mod basics;
mod fan_out;
mod grouping;
mod joins;
mod utility;
mod writes;

/// A planner over [`schema`] with `shards` shards.
fn planner(shards: usize) -> Planner {
    Planner::new(schema(shards), 16)
}

/// Plans a simple-query statement.
/// Every shard runs the client's statement, merged as `merge` says.
fn everywhere(merge: ResultMerge) -> ShardPlan {
    ShardPlan {
        target: ShardTarget::All,
        statements: ShardStatements::Original,
        merge,
    }
}

fn plan(planner: &Planner, sql: &str) -> Result<ShardPlan, PlanError> {
    planner.plan(sql, &PlanInput::default())
}

/// Plans with text parameters.
fn plan_with(
    planner: &Planner,
    sql: &str,
    values: &[Option<&str>],
) -> Result<ShardPlan, PlanError> {
    let values: Vec<Option<&[u8]>> = values.iter().map(|v| v.map(str::as_bytes)).collect();
    let formats = vec![ParamFormat::Text; values.len()];
    planner.plan(
        sql,
        &PlanInput {
            params: Some(BoundParams {
                values: &values,
                formats: &formats,
            }),
            shard_override: None,
        },
    )
}

/// The shard of an integer key.
fn shard(key: i64, shards: usize) -> usize {
    hash_partition(&KeyValue::Int(key), shards)
}

/// Two integer keys on different shards of `shards`, and a third on the first's.
fn keys_apart(shards: usize) -> (i64, i64, i64) {
    let a = 1;
    let b = (2..)
        .find(|&k| shard(k, shards) != shard(a, shards))
        .unwrap_or(2);
    let c = (b + 1..)
        .find(|&k| shard(k, shards) == shard(a, shards))
        .unwrap_or(3);
    (a, b, c)
}

fn one(shard: usize) -> ShardPlan {
    ShardPlan {
        target: ShardTarget::Shards(vec![shard]),
        statements: ShardStatements::Original,
        merge: ResultMerge::PassThrough,
    }
}

fn any() -> ShardPlan {
    ShardPlan {
        target: ShardTarget::AnyOne,
        statements: ShardStatements::Original,
        merge: ResultMerge::PassThrough,
    }
}

/// The refusal's message, asserting its SQLSTATE is 0A000.
fn refused(planner: &Planner, sql: &str) -> String {
    match plan(planner, sql) {
        Err(error) => {
            assert_eq!(error.sqlstate(), "0A000", "{sql}: {error}");
            error.to_string()
        }
        Ok(plan) => panic!("{sql}: planned {plan:?}"),
    }
}

/// The rewritten text and row merge of a fan-out query.
fn fan_out(planner: &Planner, sql: &str) -> (String, RowMerge) {
    match plan(planner, sql) {
        Ok(ShardPlan {
            statements,
            merge: ResultMerge::Rows(merge),
            ..
        }) => {
            let text = match statements {
                ShardStatements::Original => sql.to_string(),
                ShardStatements::Rewritten(text) => text,
                other => panic!("{sql}: {other:?}"),
            };
            (text, merge)
        }
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn config_helper_builds() {
    assert_eq!(database(3, "").shards.len(), 3);
}
