//! Keys, targets, parameters, overrides and the cache.

use super::*;

#[test]
fn point_lookup_goes_to_the_key_shard() {
    let p = planner(3);
    for sql in [
        "SELECT * FROM users WHERE id = 5",
        "SELECT * FROM users WHERE 5 = id",
        "select name from public.USERS u where u.id = '5'::bigint and name like 'a%'",
        "SELECT * FROM users WHERE (id = 5) AND (x > 1 OR y)",
        "SELECT * FROM users WHERE x > 1 AND (y OR z) AND users.id = CAST(5 AS int8)",
        "/* pgshard: role=replica */ SELECT * FROM users WHERE id = 5",
    ] {
        assert_eq!(plan(&p, sql), Ok(one(shard(5, 3))), "{sql}");
    }
    assert_eq!(
        plan(&planner(2), "SELECT * FROM users WHERE id = 42"),
        Ok(one(hash_partition(&KeyValue::Int(42), 2)))
    );
}

#[test]
fn text_and_uuid_keys() {
    let p = planner(3);
    let text = hash_partition(&KeyValue::Text("acme".into()), 3);
    assert_eq!(
        plan(&p, "SELECT * FROM events WHERE tenant = 'acme'"),
        Ok(one(text))
    );
    let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let expected = hash_partition(
        &KeyValue::from_text(crate::sharding::KeyType::Uuid, uuid).unwrap(),
        3,
    );
    assert_eq!(
        plan(
            &p,
            &format!("SELECT * FROM devices WHERE id = '{uuid}'::uuid")
        ),
        Ok(one(expected))
    );
}

#[test]
fn in_lists_and_or_select_shard_sets() {
    let p = planner(3);
    let (a, b, c) = keys_apart(3);
    let mut both = vec![shard(a, 3), shard(b, 3)];
    both.sort_unstable();
    let sql = format!("SELECT * FROM users WHERE id IN ({a}, {b}, {c})");
    let planned = plan(&p, &sql).unwrap();
    assert_eq!(planned.target, ShardTarget::Shards(both.clone()));
    assert_eq!(planned.statements, ShardStatements::Original);
    assert_eq!(planned.merge, ResultMerge::Rows(RowMerge::default()));
    let sql = format!("SELECT * FROM users WHERE id = ANY (ARRAY[{a}, {b}])");
    assert_eq!(
        plan(&p, &sql).unwrap().target,
        ShardTarget::Shards(both.clone())
    );
    let sql = format!("SELECT * FROM users WHERE id = {a} OR id = {b}");
    assert_eq!(plan(&p, &sql).unwrap().target, ShardTarget::Shards(both));
    // Both keys on one shard: that shard alone.
    let sql = format!("SELECT * FROM users WHERE id IN ({a}, {c})");
    assert_eq!(plan(&p, &sql), Ok(one(shard(a, 3))));
    let sql = format!("SELECT * FROM users WHERE (id = {a} AND x) OR (id = {c})");
    assert_eq!(plan(&p, &sql), Ok(one(shard(a, 3))));
}

#[test]
fn other_conditions_do_not_restrict() {
    let p = planner(3);
    for sql in [
        "SELECT * FROM users",
        "SELECT * FROM users WHERE id > 5",
        "SELECT * FROM users WHERE id <> 5",
        "SELECT * FROM users WHERE NOT (id = 5)",
        "SELECT * FROM users WHERE id = 5 OR name = 'x'",
        "SELECT * FROM users WHERE id + 0 = 5",
        "SELECT * FROM users WHERE id NOT IN (5)",
        "SELECT * FROM users WHERE id IN (5, other_id)",
        "SELECT * FROM users WHERE abs(id) = 5",
    ] {
        assert_eq!(plan(&p, sql).unwrap().target, ShardTarget::All, "{sql}");
    }
}

#[test]
fn parameters_are_resolved_per_execution() {
    let p = planner(3);
    let sql = "SELECT * FROM users WHERE id = $1";
    assert_eq!(plan_with(&p, sql, &[Some("5")]), Ok(one(shard(5, 3))));
    assert_eq!(plan_with(&p, sql, &[Some("7")]), Ok(one(shard(7, 3))));
    // One cached template serves both.
    assert_eq!(p.cached(), 1);
    assert_eq!(
        plan_with(&p, "SELECT * FROM users WHERE id = $1::int8", &[Some("7")]),
        Ok(one(shard(7, 3)))
    );
    let values = [Some(&9i64.to_be_bytes()[..])];
    let formats = [ParamFormat::Binary];
    let input = PlanInput {
        params: Some(BoundParams {
            values: &values,
            formats: &formats,
        }),
        shard_override: None,
    };
    assert_eq!(p.plan(sql, &input), Ok(one(shard(9, 3))));
    // An array parameter of keys.
    let any = "SELECT * FROM users WHERE id = ANY ($1)";
    let (a, b, c) = keys_apart(3);
    let mut both = vec![shard(a, 3), shard(b, 3)];
    both.sort_unstable();
    let array = format!("{{{a}, {b},NULL, {c}}}");
    assert_eq!(
        plan_with(&p, any, &[Some(&array)]).map(|p| p.target),
        Ok(ShardTarget::Shards(both))
    );
    assert_eq!(
        plan_with(
            &p,
            "SELECT * FROM users WHERE id = ANY ($1::int8[])",
            &[Some(&format!("{{{a}}}"))]
        ),
        Ok(one(shard(a, 3)))
    );
    assert_eq!(
        plan_with(&p, any, &[Some("{{1},{2}}")]).map(|p| p.target),
        Ok(ShardTarget::All)
    );
    assert_eq!(plan(&p, any).map(|p| p.target), Ok(ShardTarget::All));
    // Describe, before Bind: correct for any key.
    assert_eq!(plan(&p, sql).unwrap().target, ShardTarget::All);
    // A NULL key matches no row: any shard answers.
    assert_eq!(
        plan_with(&p, sql, &[None]).unwrap().target,
        ShardTarget::Shards(vec![0])
    );
    let error = plan_with(&p, sql, &[Some("abc")]).unwrap_err();
    assert_eq!(error.sqlstate(), "22P02");
    assert_eq!(plan_with(&p, sql, &[]).unwrap_err().sqlstate(), "08P01");
}

#[test]
fn bad_key_literals_fail_like_the_server() {
    let p = planner(2);
    assert_eq!(
        plan(&p, "SELECT * FROM users WHERE id = 'abc'")
            .unwrap_err()
            .sqlstate(),
        "22P02"
    );
    assert_eq!(
        plan(&p, "SELECT * FROM counters WHERE id = '99999999999'")
            .unwrap_err()
            .sqlstate(),
        "22003"
    );
}

#[test]
fn keys_no_shard_owns_are_errors() {
    let settings = "sharding_function = \"range\"\n\
                    shard_ranges = [{ shard = 0, to = 100 }, { shard = 1, from = 100, to = 200 }]";
    let tables = "{ table = \"users\", column = \"id\" }";
    let p = Planner::new(
        ShardSchema::new(&database_with(2, settings, tables)).unwrap(),
        4,
    );
    assert_eq!(plan(&p, "SELECT * FROM users WHERE id = 150"), Ok(one(1)));
    let error = plan(&p, "SELECT * FROM users WHERE id = 500").unwrap_err();
    assert_eq!(error.sqlstate(), "23514");
    let error = plan(&p, "INSERT INTO users (id) VALUES (NULL)").unwrap_err();
    assert_eq!(error.sqlstate(), "23514");
}

#[test]
fn hints_and_overrides_force_a_shard() {
    let p = planner(3);
    let forced = |sql: &str, shard_override| {
        p.plan(
            sql,
            &PlanInput {
                params: None,
                shard_override,
            },
        )
    };
    assert_eq!(
        forced("/* pgshard: shard=2 */ SELECT * FROM users", None),
        Ok(one(2))
    );
    assert_eq!(forced("SELECT * FROM users", Some(1)), Ok(one(1)));
    // The hint wins over the session setting.
    assert_eq!(
        forced("/* pgshard: shard=0 */ SELECT 1", Some(1)),
        Ok(one(0))
    );
    assert_eq!(
        forced("/* pgshard: shard=auto */ SELECT 1", Some(1)),
        Ok(one(1))
    );
    // Forced statements are not analyzed: anything goes, even unparsable text.
    assert_eq!(
        forced("/* pgshard: shard=1 */ VACUUM FULL frobnicate", None),
        Ok(one(1))
    );
    assert_eq!(forced("SELECT FROM WHERE", Some(2)), Ok(one(2)));
    // Two-phase statements are pgshard's own, hinted or not.
    for sql in [
        "PREPARE TRANSACTION 'x'",
        "/* pgshard: shard=1 */ prepare  transaction 'x'",
        "COMMIT PREPARED 'x'",
        "/* pgshard: shard=0 */ ROLLBACK PREPARED 'pgshard:0:0'",
    ] {
        assert_eq!(forced(sql, None).unwrap_err().sqlstate(), "0A000", "{sql}");
    }
    assert_eq!(forced("/* pgshard: shard=1 */ COMMIT", None), Ok(one(1)));
    // A statement whose key the planner reads may not be forced onto another shard:
    // its row would be where lookups by key never look.
    let key_shard = match p.plan("INSERT INTO users (id) VALUES (7)", &PlanInput::default()) {
        Ok(ShardPlan {
            target: ShardTarget::Shards(shards),
            ..
        }) => shards[0],
        other => panic!("{other:?}"),
    };
    let elsewhere = (key_shard + 1) % 3;
    for sql in [
        format!("/* pgshard: shard={elsewhere} */ INSERT INTO users (id) VALUES (7)"),
        format!("/* pgshard: shard={elsewhere} */ SELECT * FROM users WHERE id = 7"),
        format!("/* pgshard: shard={elsewhere} */ UPDATE users SET name = 'x' WHERE id = 7"),
    ] {
        let error = forced(&sql, None).unwrap_err();
        assert_eq!(error.sqlstate(), "22023", "{sql}");
        assert!(
            error.to_string().contains(&format!("shard {key_shard}")),
            "{error}"
        );
    }
    let error = forced("DELETE FROM users WHERE id = 7", Some(elsewhere)).unwrap_err();
    assert_eq!(error.sqlstate(), "22023");
    assert_eq!(
        forced(
            &format!("/* pgshard: shard={key_shard} */ INSERT INTO users (id) VALUES (7)"),
            None
        ),
        Ok(one(key_shard))
    );
    let error = forced("/* pgshard: shard=3 */ SELECT 1", None).unwrap_err();
    assert_eq!(error.sqlstate(), "22023");
    assert!(error.to_string().contains("3 shards"), "{error}");
    assert_eq!(forced("SELECT 1", Some(7)).unwrap_err().sqlstate(), "22023");
    assert_eq!(
        forced("/* pgshard: shard=x */ SELECT 1", None)
            .unwrap_err()
            .sqlstate(),
        "22023"
    );
}

#[test]
fn unparsable_statements_are_refused_as_unsupported_or_run_everywhere() {
    let p = planner(2);
    // PostgreSQL may accept what sqlparser cannot read: 0A000 saying so, never 42601.
    let error = plan(&p, "SELECT * FROM users WHERE").unwrap_err();
    assert_eq!(error.sqlstate(), "0A000");
    assert!(error.to_string().contains("sql parser error"), "{error}");
    assert_eq!(plan(&p, "frobnicate").unwrap_err().sqlstate(), "0A000");
    // Maintenance runs on every shard, sharded tables included.
    for sql in [
        "VACUUM ANALYZE users",
        "VACUUM (ANALYZE) users",
        "CHECKPOINT",
    ] {
        assert_eq!(plan(&p, sql), Ok(everywhere(ResultMerge::Same)), "{sql}");
    }
    // pgbench -i's COPY is read with its ON spelled TRUE.
    assert!(matches!(
        plan(&p, "copy users (id, name) from stdin with (freeze on)"),
        Ok(ShardPlan {
            merge: ResultMerge::Copy(_),
            ..
        })
    ));
}

#[test]
fn tables_without_sharding_rules() {
    let p = planner(2);
    for sql in [
        "SELECT 1",
        "SELECT now(), version()",
        "SELECT * FROM countries",
        "SELECT * FROM public.plans p JOIN countries c ON c.id = p.country",
        "SELECT * FROM pg_catalog.pg_class",
        "SELECT * FROM pg_stat_activity",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM generate_series(1, 3) g",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "SELECT * FROM countries WHERE id IN (SELECT country FROM plans)",
        "SELECT nextval('s')",
        "",
    ] {
        assert_eq!(plan(&p, sql), Ok(any()), "{sql}");
    }
    let message = refused(&p, "SELECT * FROM audit_log");
    assert_eq!(
        message,
        "pgshard: table \"audit_log\" is neither sharded nor replicated in database \"app\"; add it to sharded_tables or replicated_tables"
    );
    refused(
        &p,
        "SELECT * FROM users u JOIN audit_log a ON a.user_id = u.id WHERE u.id = 1",
    );
}

#[test]
fn one_statement_at_a_time() {
    refused(&planner(2), "SELECT 1; SELECT 2");
}

#[test]
fn cache_capacity_zero_caches_nothing() {
    let p = Planner::new(schema(2), 0);
    assert_eq!(
        plan(&p, "SELECT * FROM users WHERE id = 5"),
        Ok(one(shard(5, 2)))
    );
    assert_eq!(p.cached(), 0);
    let p = planner(2);
    plan(&p, "/* a */ SELECT * FROM users WHERE id = 5").unwrap();
    plan(&p, "/* b */ SELECT * FROM users WHERE id = 5").unwrap();
    assert_eq!(p.cached(), 1);
}

#[test]
fn planner_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Planner>();
}

#[test]
fn texts_differing_in_compared_constants_share_one_template() {
    let p = planner(3);
    for id in 1..=40 {
        let sql = format!("SELECT name FROM users WHERE id = {id}");
        assert_eq!(plan(&p, &sql), Ok(one(shard(id, 3))), "{sql}");
    }
    assert_eq!(p.cached(), 1);
    // A string key and an UPDATE by key, likewise.
    plan(&p, "UPDATE users SET name = 'x' WHERE id = 8").unwrap();
    plan(&p, "UPDATE users SET name = 'y' WHERE id = 9").unwrap();
    assert_eq!(p.cached(), 2);
    // A plan that rewrites the text is made from the text itself, constants included.
    let sorted = plan(
        &p,
        "SELECT name FROM users WHERE name = 'a' ORDER BY id LIMIT 3",
    )
    .unwrap();
    assert!(
        matches!(&sorted.statements, ShardStatements::Rewritten(sql) if sql.contains("'a'")),
        "{sorted:?}"
    );
}
