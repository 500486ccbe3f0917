//! Fan-out queries without grouping: ORDER BY, hidden columns, LIMIT and OFFSET.

use super::*;

fn key(column: ColumnRef, descending: bool, nulls_first: bool) -> SortKey {
    SortKey {
        column,
        descending,
        nulls_first,
    }
}

#[test]
fn the_merge_knows_which_columns_it_reads() {
    let p = planner(2);
    let merge = |sql: &str| match plan(&p, sql).unwrap().merge {
        ResultMerge::Rows(m) => m,
        other => panic!("{other:?}"),
    };
    let m = merge("SELECT name, id, region FROM users ORDER BY id");
    assert_eq!(m.visible_columns, Some(3));
    let read: Vec<bool> = (0..3).map(|i| m.reads(ColumnRef::Visible(i))).collect();
    assert_eq!(read, [false, true, false]);
    let m =
        merge("SELECT region, count(*), max(name) FROM users GROUP BY region HAVING sum(id) > 3");
    assert_eq!((m.visible_columns, m.hidden_columns), (Some(3), 1));
    assert!((0..3).all(|i| m.reads(ColumnRef::Visible(i))));
    assert!(m.reads(ColumnRef::Hidden(0)));
    assert_eq!(
        merge("SELECT * FROM users ORDER BY id").visible_columns,
        None
    );
}

#[test]
fn plain_union_is_sent_unchanged() {
    let p = planner(2);
    let planned = plan(&p, "SELECT id, name FROM users WHERE name LIKE 'a%'").unwrap();
    assert_eq!(
        planned,
        ShardPlan {
            target: ShardTarget::All,
            statements: ShardStatements::Original,
            merge: ResultMerge::Rows(RowMerge {
                visible_columns: Some(2),
                ..RowMerge::default()
            }),
        }
    );
    assert_eq!(
        plan(&p, "SELECT ALL lower(name) FROM users").unwrap().merge,
        ResultMerge::Rows(RowMerge {
            visible_columns: Some(1),
            ..RowMerge::default()
        })
    );
    // FOR UPDATE merges as a plain union.
    assert_eq!(
        plan(&p, "SELECT * FROM users FOR UPDATE")
            .unwrap()
            .statements,
        ShardStatements::Original
    );
}

#[test]
fn order_by_selected_columns() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT id, name AS n FROM users ORDER BY n DESC, 1, users.id NULLS FIRST",
    );
    // `users.id` is not written as the item `id`: it gets a (redundant) hidden copy.
    assert_eq!(
        text,
        "SELECT id, name AS n, users.id AS pgshard_hidden_0 FROM users ORDER BY n DESC, 1, users.id NULLS FIRST"
    );
    assert_eq!(merge.hidden_columns, 1);
    assert_eq!(
        merge.order_by,
        [
            key(ColumnRef::Visible(1), true, true),
            key(ColumnRef::Visible(0), false, false),
            key(ColumnRef::Hidden(0), false, true),
        ]
    );
    let (text, merge) = fan_out(&p, "SELECT id, name FROM users ORDER BY name, id DESC");
    assert_eq!(text, "SELECT id, name FROM users ORDER BY name, id DESC");
    assert_eq!(merge.hidden_columns, 0);
}

#[test]
fn order_by_other_expressions_appends_hidden_columns() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT id FROM users ORDER BY name, lower(email) DESC NULLS LAST",
    );
    assert_eq!(
        text,
        "SELECT id, name AS pgshard_hidden_0, lower(email) AS pgshard_hidden_1 FROM users ORDER BY name, lower(email) DESC NULLS LAST"
    );
    assert_eq!(merge.hidden_columns, 2);
    assert_eq!(
        merge.order_by,
        [
            key(ColumnRef::Hidden(0), false, false),
            key(ColumnRef::Hidden(1), true, false)
        ]
    );
}

#[test]
fn order_by_with_star() {
    let p = planner(2);
    let (text, merge) = fan_out(&p, "SELECT * FROM users ORDER BY name");
    assert_eq!(
        text,
        "SELECT *, name AS pgshard_hidden_0 FROM users ORDER BY name"
    );
    assert_eq!(merge.order_by, [key(ColumnRef::Hidden(0), false, false)]);
    assert_eq!(merge.hidden_columns, 1);
    // A position counts the expanded columns, as the shards' rows have them.
    let (_, merge) = fan_out(&p, "SELECT * FROM users ORDER BY 2 DESC");
    assert_eq!(merge.order_by, [key(ColumnRef::Visible(1), true, true)]);
    // Items after a `*` have unknown positions: copied as hidden columns.
    let (text, merge) = fan_out(&p, "SELECT u.*, lower(name) AS l FROM users u ORDER BY l");
    assert_eq!(
        text,
        "SELECT u.*, lower(name) AS l, lower(name) AS pgshard_hidden_0 FROM users u ORDER BY l"
    );
    assert_eq!(merge.order_by, [key(ColumnRef::Hidden(0), false, false)]);
}

#[test]
fn limit_and_offset_are_pushed_down_as_their_sum() {
    let p = planner(2);
    let (text, merge) = fan_out(&p, "SELECT id FROM users ORDER BY id LIMIT 10 OFFSET 20");
    assert_eq!(text, "SELECT id FROM users ORDER BY id LIMIT 30");
    assert_eq!((merge.limit, merge.offset), (Some(10), 20));
    let (text, merge) = fan_out(&p, "SELECT id FROM users LIMIT 5");
    assert_eq!(text, "SELECT id FROM users LIMIT 5");
    assert_eq!((merge.limit, merge.offset), (Some(5), 0));
    let (text, merge) = fan_out(&p, "SELECT id FROM users OFFSET 5");
    assert_eq!(text, "SELECT id FROM users");
    assert_eq!((merge.limit, merge.offset), (None, 5));
    let (text, merge) = fan_out(&p, "SELECT id FROM users LIMIT ALL");
    assert_eq!(text, "SELECT id FROM users LIMIT ALL");
    assert_eq!(merge.limit, None);
    let (text, merge) = fan_out(
        &p,
        "SELECT id FROM users ORDER BY id FETCH FIRST 3 ROWS ONLY",
    );
    assert_eq!(text, "SELECT id FROM users ORDER BY id LIMIT 3");
    assert_eq!(merge.limit, Some(3));
}

#[test]
fn limit_parameters_are_read_at_bind() {
    let p = planner(2);
    let sql = "SELECT id FROM users ORDER BY id LIMIT $1 OFFSET $2";
    let planned = plan_with(&p, sql, &[Some("10"), Some("5")]).unwrap();
    assert_eq!(
        planned.statements,
        ShardStatements::Rewritten(
            "SELECT id FROM users ORDER BY id LIMIT ($1)::BIGINT + ($2)::BIGINT".into()
        )
    );
    let ResultMerge::Rows(merge) = planned.merge else {
        panic!()
    };
    assert_eq!((merge.limit, merge.offset), (Some(10), 5));
    // Unknown before Bind.
    let ResultMerge::Rows(merge) = plan(&p, sql).unwrap().merge else {
        panic!()
    };
    assert_eq!((merge.limit, merge.offset), (None, 0));
    // LIMIT NULL is no limit.
    let ResultMerge::Rows(merge) = plan_with(&p, sql, &[None, Some("0")]).unwrap().merge else {
        panic!()
    };
    assert_eq!(merge.limit, None);
    let error = plan_with(&p, sql, &[Some("-1"), Some("0")]).unwrap_err();
    assert_eq!(
        (error.sqlstate(), error.to_string().as_str()),
        ("2201W", "LIMIT must not be negative")
    );
    assert_eq!(
        plan_with(&p, sql, &[Some("1"), Some("-1")])
            .unwrap_err()
            .sqlstate(),
        "2201X"
    );
    assert_eq!(
        plan(&p, "SELECT id FROM users LIMIT -1")
            .unwrap_err()
            .sqlstate(),
        "2201W"
    );
    // OFFSET $1 alone would vanish from the shards' statement.
    refused(&p, "SELECT id FROM users OFFSET $1");
    refused(&p, "SELECT id FROM users LIMIT 1 + 1");
}

#[test]
fn single_shard_queries_keep_everything() {
    let p = planner(2);
    let sql = "SELECT id, avg(x) OVER (), count(*) FROM users WHERE id = 3 GROUP BY id ORDER BY 2 LIMIT 1 OFFSET 1";
    assert_eq!(plan(&p, sql), Ok(one(shard(3, 2))));
}

#[test]
fn window_functions_distinct_on_and_select_into_are_refused() {
    let p = planner(2);
    let message = refused(&p, "SELECT id, row_number() OVER (ORDER BY id) FROM users");
    assert_eq!(message, "pgshard: window functions over a sharded table spanning several shards cannot be merged exactly; filter on the shard key \"id\" to run on one shard");
    assert!(
        message.starts_with("pgshard: window functions"),
        "{message}"
    );
    refused(
        &p,
        "SELECT id FROM users ORDER BY rank() OVER (ORDER BY id)",
    );
    refused(
        &p,
        "SELECT id, sum(x) OVER w FROM users WINDOW w AS (PARTITION BY id)",
    );
    refused(&p, "SELECT DISTINCT ON (name) name, id FROM users");
    refused(&p, "SELECT * INTO copy FROM users");
    refused(&p, "SELECT id FROM users ORDER BY name USING <");
    refused(&p, "SELECT id FROM users FETCH FIRST 3 ROWS WITH TIES");
}
