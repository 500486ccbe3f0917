//! Joins, subqueries and CTEs: one shard only when every sharded table is confined
//! to it; fan-out only over tables joined on their keys.

use super::*;

#[test]
fn colocated_joins_follow_the_key() {
    let p = planner(3);
    for sql in [
        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 5",
        "SELECT * FROM users u, orders o WHERE u.id = o.user_id AND o.user_id = 5",
        "SELECT * FROM users u LEFT JOIN orders o ON u.id = o.user_id AND o.x > 1 WHERE u.id = 5",
        "SELECT * FROM users JOIN counters USING (id) WHERE users.id = 5",
        "SELECT * FROM users NATURAL JOIN counters WHERE id = 5",
        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id JOIN countries c ON c.id = u.country WHERE u.id = 5",
        "SELECT * FROM users u WHERE u.id = 5 AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
        "SELECT * FROM users WHERE id = 5 AND name IN (SELECT name FROM countries)",
        "SELECT * FROM (SELECT * FROM users WHERE id = 5) s",
        "WITH mine AS (SELECT * FROM orders WHERE user_id = 5) SELECT * FROM mine JOIN users u ON u.id = 5",
        "SELECT * FROM users WHERE id = 5 UNION ALL SELECT * FROM users WHERE id = 5",
        "SELECT (SELECT count(*) FROM orders WHERE user_id = 5) FROM users WHERE id = 5",
    ] {
        assert_eq!(plan(&p, sql), Ok(one(shard(5, 3))), "{sql}");
    }
}

#[test]
fn tables_pinned_to_different_shards_are_refused() {
    let p = planner(3);
    let (a, b, _) = keys_apart(3);
    for sql in [
        format!("SELECT * FROM users WHERE id = {a} UNION SELECT * FROM users WHERE id = {b}"),
        format!("SELECT * FROM users u, orders o WHERE u.id = {a} AND o.user_id = {b}"),
        format!("SELECT * FROM users WHERE id = {a} AND x IN (SELECT user_id FROM orders)"),
        format!("SELECT * FROM users u WHERE u.id = {a} AND EXISTS (SELECT 1 FROM orders o WHERE o.x = u.x)"),
    ] {
        refused(&p, &sql);
    }
}

#[test]
fn fan_out_joins_must_be_on_keys() {
    let p = planner(2);
    for sql in [
        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id",
        "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id",
        "SELECT * FROM users u FULL JOIN counters c ON c.id = u.id",
        "SELECT * FROM users u JOIN countries c ON c.id = u.country",
        "SELECT * FROM users u LEFT JOIN countries c ON c.id = u.country",
        "SELECT * FROM users u, countries c",
        "SELECT * FROM users WHERE country IN (SELECT id FROM countries WHERE eu)",
        "WITH eu AS (SELECT id FROM countries) SELECT * FROM users WHERE country IN (SELECT id FROM eu)",
    ] {
        let planned = plan(&p, sql).unwrap();
        assert_eq!(planned.target, ShardTarget::All, "{sql}");
        assert!(matches!(planned.merge, ResultMerge::Rows(_)), "{sql}");
    }
    let message = refused(&p, "SELECT * FROM users u JOIN orders o ON o.x = u.x");
    assert!(message.contains("shard keys"), "{message}");
    refused(
        &p,
        "SELECT * FROM users u JOIN events e ON e.tenant = u.name",
    );
    // Keys of different types are never on the same shard.
    refused(&p, "SELECT * FROM users u JOIN devices d ON d.id = u.id");
    refused(&p, "SELECT * FROM users u, orders o");
}

#[test]
fn fan_out_refuses_what_would_repeat_or_miss_rows() {
    let p = planner(2);
    let message = refused(
        &p,
        "SELECT * FROM countries c LEFT JOIN users u ON u.country = c.id",
    );
    assert!(message.contains("outer join"), "{message}");
    refused(
        &p,
        "SELECT * FROM users u RIGHT JOIN countries c ON u.country = c.id",
    );
    refused(
        &p,
        "SELECT * FROM countries c FULL JOIN users u ON u.country = c.id",
    );
    let message = refused(
        &p,
        "SELECT * FROM users WHERE x IN (SELECT user_id FROM orders)",
    );
    assert!(message.contains("subqueries"), "{message}");
    refused(
        &p,
        "SELECT * FROM users WHERE id NOT IN (SELECT user_id FROM orders)",
    );
    refused(
        &p,
        "SELECT * FROM users WHERE id IN (SELECT max(user_id) FROM orders)",
    );
    refused(
        &p,
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders LIMIT 5)",
    );
    refused(
        &p,
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders GROUP BY user_id)",
    );
    refused(
        &p,
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.x = u.x)",
    );
    refused(
        &p,
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id OR o.x)",
    );
    refused(&p, "SELECT * FROM users UNION SELECT * FROM users");
    refused(&p, "WITH o AS (SELECT * FROM orders) SELECT * FROM o");
    refused(&p, "SELECT * FROM (SELECT * FROM users) s");
    refused(&p, "SELECT (SELECT count(*) FROM orders) FROM countries");
    refused(
        &p,
        "SELECT * FROM countries WHERE id IN (SELECT country FROM users)",
    );
}

#[test]
fn subqueries_correlated_on_the_key_fan_out() {
    let p = planner(2);
    for sql in [
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.total > 10)",
        "SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE u.id = o.user_id)",
        "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u",
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 10)",
        "SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id ORDER BY o.total DESC LIMIT 3) top",
        "SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
    ] {
        let planned = plan(&p, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(planned.target, ShardTarget::All, "{sql}");
    }
    // Pinned through the link.
    assert_eq!(
        plan(
            &p,
            "SELECT * FROM users WHERE id = 5 AND id IN (SELECT user_id FROM orders)"
        ),
        Ok(one(shard(5, 2)))
    );
}

#[test]
fn outer_join_conditions_only_link_the_nullable_side() {
    let p = planner(3);
    // The preserved side's rows are not restricted by ON: orders here is every order.
    refused(
        &p,
        "SELECT * FROM users u WHERE u.id = 5 AND EXISTS (SELECT 1 FROM orders o LEFT JOIN countries c ON o.user_id = u.id)",
    );
    assert_eq!(
        plan(&p, "SELECT * FROM users u WHERE u.id = 5 AND EXISTS (SELECT 1 FROM countries c LEFT JOIN orders o ON o.user_id = u.id)"),
        Ok(one(shard(5, 3)))
    );
    // Key predicates in an outer join's ON restrict nothing.
    assert_eq!(
        plan(
            &p,
            "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id AND u.id = 5"
        )
        .map(|p| p.target),
        Ok(ShardTarget::All)
    );
}

#[test]
fn aliases_scopes_and_names() {
    let p = planner(3);
    // An unqualified key in a subquery belongs to the subquery's table.
    assert_eq!(
        plan(&p, "SELECT * FROM orders o WHERE o.user_id = 5 AND o.x IN (SELECT x FROM countries WHERE id = 1)"),
        Ok(one(shard(5, 3)))
    );
    // A key name two joined tables share is ambiguous: no restriction.
    assert_eq!(
        plan(
            &p,
            "SELECT * FROM users u JOIN counters c ON c.id = u.id WHERE id = 5"
        )
        .map(|p| p.target),
        Ok(ShardTarget::All)
    );
    // `u.id` is the alias's key; the bare table name is no longer visible.
    assert_eq!(
        plan(&p, "SELECT * FROM users AS u WHERE U.ID = 5"),
        Ok(one(shard(5, 3)))
    );
    // A CTE named like a sharded table is not that table.
    assert_eq!(
        plan(
            &p,
            "WITH users AS (SELECT 1 AS id) SELECT * FROM users WHERE id = 5"
        ),
        Ok(any())
    );
}

#[test]
fn params_unknown_at_describe_still_plan() {
    let p = planner(2);
    let sql = "SELECT * FROM users u, orders o WHERE u.id = $1 AND o.user_id = $2";
    // Describe: any shard describes it.
    assert_eq!(plan(&p, sql), Ok(any()));
    assert_eq!(
        plan_with(&p, sql, &[Some("5"), Some("5")]),
        Ok(one(shard(5, 2)))
    );
    let (a, b, _) = keys_apart(2);
    let (a, b) = (a.to_string(), b.to_string());
    assert_eq!(
        plan_with(&p, sql, &[Some(&a), Some(&b)])
            .unwrap_err()
            .sqlstate(),
        "0A000"
    );
}
