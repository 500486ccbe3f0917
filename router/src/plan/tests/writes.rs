//! INSERT, UPDATE and DELETE.

use super::*;

#[test]
fn insert_rows_of_one_shard_pass_through() {
    let p = planner(3);
    let (a, _, c) = keys_apart(3);
    assert_eq!(
        plan(&p, "INSERT INTO users (id, name) VALUES (5, 'x')"),
        Ok(one(shard(5, 3)))
    );
    let sql = format!("INSERT INTO users (name, id) VALUES ('a', {a}), ('c', {c}) RETURNING id");
    assert_eq!(plan(&p, &sql), Ok(one(shard(a, 3))));
    assert_eq!(
        plan_with(
            &p,
            "INSERT INTO users (id, name) VALUES ($1, $2)",
            &[Some("7"), Some("x")]
        ),
        Ok(one(shard(7, 3)))
    );
    // Describe before Bind.
    assert_eq!(
        plan(&p, "INSERT INTO users (id, name) VALUES ($1, $2)"),
        Ok(ShardPlan {
            target: ShardTarget::All,
            statements: ShardStatements::Original,
            merge: ResultMerge::Counts
        })
    );
    // NULL keys are placed as PostgreSQL's hash partitioning places them.
    assert_eq!(plan(&p, "INSERT INTO users (id) VALUES (NULL)"), Ok(one(0)));
}

#[test]
fn insert_rows_of_several_shards_are_split() {
    let p = planner(3);
    let (a, b, c) = keys_apart(3);
    let (sa, sb) = (shard(a, 3), shard(b, 3));
    let sql = "INSERT INTO users (id, name) VALUES ($1, $2), ($3, 'two'), ($4, $2) ON CONFLICT (id) DO UPDATE SET name = $5";
    let values = [a.to_string(), b.to_string(), c.to_string()];
    let planned = plan_with(
        &p,
        sql,
        &[
            Some(&values[0]),
            Some("x"),
            Some(&values[1]),
            Some(&values[2]),
            Some("y"),
        ],
    )
    .unwrap();
    let mut shards = vec![sa, sb];
    shards.sort_unstable();
    assert_eq!(planned.target, ShardTarget::Shards(shards.clone()));
    assert_eq!(planned.merge, ResultMerge::Counts);
    let ShardStatements::PerShard(statements) = planned.statements else {
        panic!("{:?}", planned.statements)
    };
    let for_shard = |s| statements.iter().find(|st| st.shard == s).unwrap();
    assert_eq!(
        for_shard(sa),
        &ShardStatement {
            shard: sa,
            sql: "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $2) ON CONFLICT(id) DO UPDATE SET name = $4".into(),
            params: vec![0, 1, 3, 4],
        }
    );
    assert_eq!(
        for_shard(sb),
        &ShardStatement {
            shard: sb,
            sql: "INSERT INTO users (id, name) VALUES ($1, 'two') ON CONFLICT(id) DO UPDATE SET name = $2".into(),
            params: vec![2, 4],
        }
    );
    assert_eq!(
        statements.iter().map(|s| s.shard).collect::<Vec<_>>(),
        shards
    );
}

#[test]
fn insert_returning_keeps_the_row_order() {
    let p = planner(3);
    let (a, b, c) = keys_apart(3);
    let sql = format!("INSERT INTO users (id) VALUES ({a}), ({b}), ({c}) RETURNING id");
    let planned = plan(&p, &sql).unwrap();
    assert_eq!(
        planned.merge,
        ResultMerge::InsertReturning {
            row_shards: vec![shard(a, 3), shard(b, 3), shard(c, 3)]
        }
    );
    let sql =
        format!("INSERT INTO users (id) VALUES ({a}), ({b}) ON CONFLICT DO NOTHING RETURNING id");
    refused(&p, &sql);
    let sql = format!("INSERT INTO users (id) VALUES ({a}), ({b}) ON CONFLICT DO NOTHING");
    assert_eq!(plan(&p, &sql).unwrap().merge, ResultMerge::Counts);
}

#[test]
fn insert_without_a_column_list_asks_for_the_columns() {
    let p = planner(2);
    for (sql, table) in [
        ("INSERT INTO users VALUES (1, 'x')", "users"),
        (
            "INSERT INTO public.\"users\" VALUES ($1, $2)",
            "public.\"users\"",
        ),
    ] {
        assert_eq!(
            plan(&p, sql).unwrap_err(),
            PlanError::ColumnsNeeded {
                table: table.to_string()
            }
        );
    }
    let named = name_columns("INSERT INTO users VALUES (7, 'x')", "id, name").unwrap();
    let planned = plan(&p, &named).unwrap();
    assert_eq!(planned.target, ShardTarget::Shards(vec![shard(7, 2)]));
    // A replicated table needs no key: it goes everywhere as it is.
    assert_eq!(
        plan(&p, "INSERT INTO countries VALUES ('x', 'y')")
            .unwrap()
            .target,
        ShardTarget::All
    );
}

#[test]
fn insert_refusals() {
    let p = planner(2);
    assert_eq!(
        refused(&p, "INSERT INTO users (name) VALUES ('x')"),
        "pgshard: INSERT into sharded table \"users\" must name its shard key column \"id\""
    );
    refused(&p, "INSERT INTO users (id) VALUES (DEFAULT)");
    refused(&p, "INSERT INTO users (id) VALUES (nextval('s'))");
    refused(&p, "INSERT INTO users (id) VALUES (1 + 1)");
    refused(&p, "INSERT INTO users (id) SELECT id FROM countries");
    refused(&p, "INSERT INTO users DEFAULT VALUES");
    refused(
        &p,
        "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 2",
    );
    refused(
        &p,
        "INSERT INTO users (id, n) VALUES (1, (SELECT count(*) FROM orders))",
    );
    refused(&p, "INSERT INTO audit (id) VALUES (1)");
    assert_eq!(
        plan(&p, "INSERT INTO users (id) VALUES ('x')")
            .unwrap_err()
            .sqlstate(),
        "22P02"
    );
}

#[test]
fn replicated_writes_go_everywhere_once() {
    let p = planner(2);
    let everywhere = ShardPlan {
        target: ShardTarget::All,
        statements: ShardStatements::Original,
        merge: ResultMerge::Same,
    };
    for sql in [
        "INSERT INTO countries (id, name) VALUES (1, 'fr') RETURNING *",
        "INSERT INTO countries SELECT * FROM plans",
        "UPDATE countries SET name = 'x' WHERE id = 1",
        "DELETE FROM public.plans WHERE id IN (SELECT id FROM countries)",
    ] {
        assert_eq!(plan(&p, sql), Ok(everywhere.clone()), "{sql}");
    }
    refused(&p, "INSERT INTO countries SELECT * FROM users");
    refused(&p, "UPDATE countries SET n = (SELECT count(*) FROM users)");
    refused(
        &p,
        "DELETE FROM countries WHERE id IN (SELECT country FROM users)",
    );
}

#[test]
fn update_and_delete_by_key() {
    let p = planner(3);
    for sql in [
        "UPDATE users SET name = 'x' WHERE id = 5",
        "UPDATE users u SET name = c.name FROM countries c WHERE c.id = u.country AND u.id = 5",
        "UPDATE users SET name = o.note FROM orders o WHERE o.user_id = users.id AND users.id = 5 RETURNING *",
        "DELETE FROM users WHERE id = 5",
        "DELETE FROM users u USING orders o WHERE o.user_id = u.id AND o.user_id = 5",
    ] {
        assert_eq!(plan(&p, sql), Ok(one(shard(5, 3))), "{sql}");
    }
    assert_eq!(
        plan_with(&p, "UPDATE users SET n = n + 1 WHERE id = $1", &[Some("5")]),
        Ok(one(shard(5, 3)))
    );
    let (a, b, _) = keys_apart(3);
    let planned = plan(&p, &format!("DELETE FROM users WHERE id IN ({a}, {b})")).unwrap();
    let mut shards = vec![shard(a, 3), shard(b, 3)];
    shards.sort_unstable();
    assert_eq!(planned.target, ShardTarget::Shards(shards));
    assert_eq!(planned.merge, ResultMerge::Counts);
    let planned = plan(
        &p,
        "UPDATE users SET active = false WHERE last_seen < now()",
    )
    .unwrap();
    assert_eq!(
        planned,
        ShardPlan {
            target: ShardTarget::All,
            statements: ShardStatements::Original,
            merge: ResultMerge::Counts
        }
    );
}

#[test]
fn update_and_delete_refusals() {
    let p = planner(2);
    let message = refused(&p, "UPDATE users SET id = 7 WHERE id = 5");
    assert!(message.contains("shard key"), "{message}");
    refused(&p, "UPDATE users SET (name, id) = ('x', 7)");
    refused(&p, "UPDATE users u SET x = 1 FROM orders o WHERE o.x = u.x");
    refused(
        &p,
        "DELETE FROM users WHERE x IN (SELECT user_id FROM orders)",
    );
    assert_eq!(
        plan(
            &p,
            "DELETE FROM users WHERE id IN (SELECT user_id FROM orders WHERE total = 0)"
        )
        .map(|p| p.merge),
        Ok(ResultMerge::Counts)
    );
    refused(
        &p,
        "DELETE FROM users u USING events e WHERE e.tenant = u.name",
    );
    refused(&p, "UPDATE audit SET x = 1");
    refused(
        &p,
        "WITH gone AS (DELETE FROM users WHERE id = 1 RETURNING *) SELECT * FROM gone",
    );
}
