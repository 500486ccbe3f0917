//! Aggregates, GROUP BY, HAVING and DISTINCT over several shards.

use super::*;

fn agg(column: ColumnRef, kind: AggregateKind) -> Aggregate {
    Aggregate { column, kind }
}

fn grouping(merge: &RowMerge) -> &Grouping {
    merge.group.as_ref().expect("grouped")
}

#[test]
fn aggregates_without_group_by_make_one_row() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT count(*), count(x), sum(x), min(x), max(x), bool_and(b), bool_or(b), every(b) FROM users",
    );
    assert_eq!(
        text,
        "SELECT count(*), count(x), sum(x), min(x), max(x), bool_and(b), bool_or(b), every(b) FROM users"
    );
    use AggregateKind::*;
    let kinds = [Count, Count, Sum, Min, Max, BoolAnd, BoolOr, BoolAnd];
    let expected: Vec<Aggregate> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| agg(ColumnRef::Visible(i), *kind))
        .collect();
    assert_eq!(
        merge.group,
        Some(Grouping {
            keys: vec![],
            aggregates: expected,
            computed: vec![],
            sorted_by: vec![]
        })
    );
    assert_eq!(merge.hidden_columns, 0);
}

#[test]
fn avg_becomes_sum_and_a_hidden_count() {
    let p = planner(2);
    let (text, merge) = fan_out(&p, "SELECT avg(x), avg(y) AS mean FROM users");
    assert_eq!(
        text,
        "SELECT sum(x) AS avg, sum(y) AS mean, count(x) AS pgshard_hidden_0, count(y) AS pgshard_hidden_1 FROM users"
    );
    assert_eq!(
        grouping(&merge).aggregates,
        [
            agg(
                ColumnRef::Visible(0),
                AggregateKind::Avg {
                    count_column: ColumnRef::Hidden(0)
                }
            ),
            agg(
                ColumnRef::Visible(1),
                AggregateKind::Avg {
                    count_column: ColumnRef::Hidden(1)
                }
            ),
        ]
    );
    assert_eq!(merge.hidden_columns, 2);
}

#[test]
fn group_by_keys_and_hidden_keys() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT country, count(*) AS n FROM users GROUP BY country, city ORDER BY n DESC, country LIMIT 5 OFFSET 1",
    );
    // The shards group too, but HAVING, ORDER BY and LIMIT are the merge's.
    assert_eq!(
        text,
        "SELECT country, count(*) AS n, city AS pgshard_hidden_0 FROM users GROUP BY country, city ORDER BY 1, 3"
    );
    let group = grouping(&merge);
    assert_eq!(group.keys, [ColumnRef::Visible(0), ColumnRef::Hidden(0)]);
    assert_eq!(
        group.aggregates,
        [agg(ColumnRef::Visible(1), AggregateKind::Count)]
    );
    assert_eq!(
        merge.order_by,
        [
            SortKey {
                column: ColumnRef::Visible(1),
                descending: true,
                nulls_first: true
            },
            SortKey {
                column: ColumnRef::Visible(0),
                descending: false,
                nulls_first: false
            },
        ]
    );
    assert_eq!((merge.limit, merge.offset), (Some(5), 1));
    assert_eq!(merge.hidden_columns, 1);
}

#[test]
fn group_by_position_alias_and_expression() {
    let p = planner(2);
    let (_, merge) = fan_out(&p, "SELECT lower(name) AS l, sum(x) FROM users GROUP BY 1");
    assert_eq!(grouping(&merge).keys, [ColumnRef::Visible(0)]);
    let (_, merge) = fan_out(&p, "SELECT lower(name) AS l, sum(x) FROM users GROUP BY l");
    assert_eq!(grouping(&merge).keys, [ColumnRef::Visible(0)]);
    let (text, merge) = fan_out(
        &p,
        "SELECT lower(name), sum(x) FROM users GROUP BY lower(name) ORDER BY 1",
    );
    assert_eq!(
        text,
        "SELECT lower(name), sum(x) FROM users GROUP BY lower(name) ORDER BY 1"
    );
    assert_eq!(grouping(&merge).keys, [ColumnRef::Visible(0)]);
    // A bare name is an input column before it is an alias: `lower(name)` is then no
    // group key.
    refused(
        &p,
        "SELECT lower(name) AS name, count(*) FROM users GROUP BY name",
    );
    // Grouping by the shard key needs nothing special.
    let (_, merge) = fan_out(&p, "SELECT id, count(*) FROM users GROUP BY id");
    assert_eq!(grouping(&merge).keys, [ColumnRef::Visible(0)]);
    // Plain columns and constants are keys too (dependent on the group, or fixed).
    let (_, merge) = fan_out(
        &p,
        "SELECT id, name, 'x' AS tag, count(*) FROM users GROUP BY id",
    );
    assert_eq!(
        grouping(&merge).keys,
        [
            ColumnRef::Visible(0),
            ColumnRef::Visible(1),
            ColumnRef::Visible(2)
        ]
    );
}

#[test]
fn having_becomes_a_predicate_over_merged_columns() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > 10 AND max(age) <= 30 OR country IS NULL",
    );
    assert_eq!(
        text,
        "SELECT country, count(*), max(age) AS pgshard_hidden_0 FROM users GROUP BY country ORDER BY 1"
    );
    assert_eq!(
        merge.having,
        Some(Predicate::Or(
            Box::new(Predicate::And(
                Box::new(Predicate::Compare {
                    column: ColumnRef::Visible(1),
                    op: CompareOp::Gt,
                    value: Some("10".into())
                }),
                Box::new(Predicate::Compare {
                    column: ColumnRef::Hidden(0),
                    op: CompareOp::LtEq,
                    value: Some("30".into())
                })
            )),
            Box::new(Predicate::IsNull {
                column: ColumnRef::Visible(0),
                negated: false
            })
        ))
    );
    assert_eq!(
        grouping(&merge).aggregates,
        [
            agg(ColumnRef::Visible(1), AggregateKind::Count),
            agg(ColumnRef::Hidden(0), AggregateKind::Max)
        ]
    );
    // HAVING without GROUP BY, and avg only in HAVING.
    let (text, merge) = fan_out(&p, "SELECT count(*) FROM users HAVING avg(x) > 2.5");
    assert_eq!(
        text,
        "SELECT count(*), sum(x) AS pgshard_hidden_0, count(x) AS pgshard_hidden_1 FROM users"
    );
    assert_eq!(
        grouping(&merge).aggregates[1],
        agg(
            ColumnRef::Hidden(0),
            AggregateKind::Avg {
                count_column: ColumnRef::Hidden(1)
            }
        )
    );
}

#[test]
fn order_by_aggregates_not_selected() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT country FROM users GROUP BY country ORDER BY sum(x) DESC",
    );
    assert_eq!(
        text,
        "SELECT country, sum(x) AS pgshard_hidden_0 FROM users GROUP BY country ORDER BY 1"
    );
    assert_eq!(merge.order_by[0].column, ColumnRef::Hidden(0));
    assert_eq!(
        grouping(&merge).aggregates,
        [agg(ColumnRef::Hidden(0), AggregateKind::Sum)]
    );
    // An aggregate in ORDER BY alone makes one group.
    let (text, merge) = fan_out(&p, "SELECT 1 FROM users ORDER BY count(*)");
    assert_eq!(
        text,
        "SELECT 1, count(*) AS pgshard_hidden_0 FROM users ORDER BY 1"
    );
    assert_eq!(grouping(&merge).keys, [ColumnRef::Visible(0)]);
    // A group key not selected sorts by its hidden key column.
    let (text, merge) = fan_out(
        &p,
        "SELECT count(*) FROM users GROUP BY country ORDER BY country",
    );
    assert_eq!(
        text,
        "SELECT count(*), country AS pgshard_hidden_0 FROM users GROUP BY country ORDER BY 2"
    );
    assert_eq!(merge.order_by[0].column, ColumnRef::Hidden(0));
    assert_eq!(grouping(&merge).keys, [ColumnRef::Hidden(0)]);
}

#[test]
fn distinct_aggregates_of_the_shard_key_or_order_aggregates() {
    let p = planner(2);
    let (_, merge) = fan_out(&p, "SELECT count(DISTINCT id) FROM users");
    assert_eq!(
        grouping(&merge).aggregates,
        [agg(ColumnRef::Visible(0), AggregateKind::Count)]
    );
    let (_, merge) = fan_out(
        &p,
        "SELECT count(DISTINCT o.user_id) FROM users u JOIN orders o ON o.user_id = u.id",
    );
    assert_eq!(grouping(&merge).aggregates.len(), 1);
    let message = refused(&p, "SELECT count(DISTINCT name) FROM users");
    assert!(message.contains("DISTINCT"), "{message}");
    refused(&p, "SELECT sum(DISTINCT score) FROM users");
    let (sql, merge) = fan_out(&p, "SELECT sum(DISTINCT id), max(DISTINCT name) FROM users");
    assert_eq!(
        grouping(&merge).aggregates,
        [
            agg(ColumnRef::Visible(0), AggregateKind::Sum),
            agg(ColumnRef::Visible(1), AggregateKind::Max)
        ]
    );
    assert!(sql.contains("sum(DISTINCT id)"), "{sql}");
}

#[test]
fn filtered_aggregates_keep_their_filter_on_every_shard() {
    let p = planner(2);
    let (sql, merge) = fan_out(
        &p,
        "SELECT count(*) FILTER (WHERE x > 1), avg(x) FILTER (WHERE x < 9) FROM users",
    );
    assert_eq!(sql.matches("FILTER (WHERE x > 1)").count(), 1, "{sql}");
    // avg's sum and its hidden count both count only the filtered rows.
    assert_eq!(sql.matches("FILTER (WHERE x < 9)").count(), 2, "{sql}");
    assert!(merge.group.is_some());
}

#[test]
fn unmergeable_aggregates_are_refused() {
    let p = planner(2);
    for sql in [
        "SELECT string_agg(name, ',') FROM users",
        "SELECT array_agg(id) FROM users",
        "SELECT json_agg(u) FROM users u",
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM users",
        "SELECT stddev(x) FROM users",
        "SELECT max(x ORDER BY y) FROM users",
        "SELECT coalesce(sum(x), x) FROM users",
        "SELECT coalesce(sum(x), $1) FROM users",
        "SELECT count(*)::oid FROM users",
        "SELECT max(x)::char(2) FROM users",
        "SELECT sum(x) || 'a' FROM users",
        "SELECT CASE WHEN count(*) > 1 THEN 1 END FROM users",
        "SELECT sqrt(sum(x)) FROM users",
        "SELECT sum(x) + $1 FROM users",
        "SELECT country, count(*) FROM users GROUP BY country ORDER BY greatest(count(*), 2)",
        "SELECT lower(name), count(*) FROM users GROUP BY name",
        "SELECT now(), count(*) FROM users",
        "SELECT *, count(*) FROM users GROUP BY id",
        "SELECT country, count(*) FROM users GROUP BY ROLLUP (country)",
        "SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > $1",
        "SELECT country, count(*) FROM users GROUP BY country HAVING sum(x) > count(*)",
        "SELECT country, count(*) FROM users GROUP BY country LIMIT $1",
    ] {
        refused(&p, sql);
    }
}

#[test]
fn distinct_groups_every_column() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT DISTINCT country, city FROM users ORDER BY city LIMIT 3",
    );
    assert_eq!(
        text,
        "SELECT DISTINCT country, city FROM users ORDER BY 2, 1"
    );
    assert_eq!(
        merge.group,
        Some(Grouping {
            keys: vec![ColumnRef::Visible(0), ColumnRef::Visible(1)],
            aggregates: vec![],
            computed: vec![],
            sorted_by: vec![
                SortKey {
                    column: ColumnRef::Visible(1),
                    descending: false,
                    nulls_first: false
                },
                SortKey {
                    column: ColumnRef::Visible(0),
                    descending: false,
                    nulls_first: false
                }
            ]
        })
    );
    assert_eq!(merge.order_by[0].column, ColumnRef::Visible(1));
    assert_eq!((merge.limit, merge.hidden_columns), (Some(3), 0));
    refused(&p, "SELECT DISTINCT country FROM users ORDER BY city");
    refused(&p, "SELECT DISTINCT * FROM users");
    refused(
        &p,
        "SELECT DISTINCT count(*) FROM users GROUP BY country ORDER BY 1",
    );
}

#[test]
fn output_names_stay_those_of_postgresql() {
    let p = planner(2);
    let (text, _) = fan_out(
        &p,
        "SELECT AVG(x), pg_catalog.avg(y) FROM users u JOIN countries c ON c.id = u.country",
    );
    assert_eq!(
        text,
        "SELECT sum(x) AS avg, pg_catalog.sum(y) AS avg, count(x) AS pgshard_hidden_0, pg_catalog.count(y) AS pgshard_hidden_1 FROM users u JOIN countries c ON c.id = u.country"
    );
}

fn column(c: ColumnRef) -> Box<ValueExpr> {
    Box::new(ValueExpr::Column(c))
}

fn computed(c: ColumnRef, expr: ValueExpr) -> ComputedColumn {
    ComputedColumn { column: c, expr }
}

#[test]
fn casts_and_coalesce_of_aggregates_are_applied_after_merging() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT count(*)::int, CAST(count(*) AS bigint) AS n, COALESCE(sum(x), 0), sum(x)::text, (max(x))::numeric(10,2) FROM users",
    );
    // The shards compute the bare aggregates, named as PostgreSQL names the client's
    // expressions.
    assert_eq!(
        text,
        "SELECT count(*) AS \"count\", count(*) AS n, sum(x) AS \"coalesce\", sum(x) AS \"sum\", max(x) AS \"max\" FROM users"
    );
    let g = grouping(&merge);
    use AggregateKind::*;
    assert_eq!(
        g.aggregates,
        [Count, Count, Sum, Sum, Max]
            .iter()
            .enumerate()
            .map(|(i, kind)| agg(ColumnRef::Visible(i), *kind))
            .collect::<Vec<_>>()
    );
    let v = ColumnRef::Visible;
    assert_eq!(
        g.computed,
        [
            computed(v(0), ValueExpr::Cast(column(v(0)), CastTarget::Int4)),
            computed(v(1), ValueExpr::Cast(column(v(1)), CastTarget::Int8)),
            computed(
                v(2),
                ValueExpr::Coalesce(column(v(2)), Constant::Integer("0".into()))
            ),
            computed(v(3), ValueExpr::Cast(column(v(3)), CastTarget::Text)),
            computed(
                v(4),
                ValueExpr::Cast(
                    column(v(4)),
                    CastTarget::Numeric {
                        typmod: Some(NumericTypmod {
                            precision: 10,
                            scale: 2
                        })
                    }
                )
            ),
        ]
    );
    assert_eq!(merge.hidden_columns, 0);
}

#[test]
fn computed_avg_and_group_keys_order_by_the_computed_column() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT country, avg(x)::numeric(10,2), COALESCE(avg(y), 0) AS m FROM users GROUP BY country ORDER BY 2 DESC, m, avg(x)::numeric(10,2)",
    );
    assert_eq!(
        text,
        "SELECT country, sum(x) AS \"avg\", sum(y) AS m, count(x) AS pgshard_hidden_0, count(y) AS pgshard_hidden_1 FROM users GROUP BY country ORDER BY 1"
    );
    let g = grouping(&merge);
    assert_eq!(g.keys, [ColumnRef::Visible(0)]);
    assert_eq!(
        g.aggregates[0],
        agg(
            ColumnRef::Visible(1),
            AggregateKind::Avg {
                count_column: ColumnRef::Hidden(0)
            }
        )
    );
    assert_eq!(
        g.computed.iter().map(|w| w.column).collect::<Vec<_>>(),
        [ColumnRef::Visible(1), ColumnRef::Visible(2)]
    );
    let order: Vec<ColumnRef> = merge.order_by.iter().map(|k| k.column).collect();
    assert_eq!(
        order,
        [
            ColumnRef::Visible(1),
            ColumnRef::Visible(2),
            ColumnRef::Visible(1)
        ]
    );
}

#[test]
fn having_and_order_by_keep_bare_and_computed_aggregates_apart() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT country, count(*)::int AS n FROM users GROUP BY country HAVING count(*) > 1 AND sum(x)::text <> '0' ORDER BY sum(x)::text, n",
    );
    // HAVING's count(*) is the combined count, not the select item's cast; the cast
    // sum gets its own hidden column, which ORDER BY finds again.
    assert_eq!(
        text,
        "SELECT country, count(*) AS n, count(*) AS pgshard_hidden_0, sum(x) AS pgshard_hidden_1 FROM users GROUP BY country ORDER BY 1"
    );
    let g = grouping(&merge);
    assert_eq!(
        g.aggregates,
        [
            agg(ColumnRef::Visible(1), AggregateKind::Count),
            agg(ColumnRef::Hidden(0), AggregateKind::Count),
            agg(ColumnRef::Hidden(1), AggregateKind::Sum),
        ]
    );
    let (v, h) = (ColumnRef::Visible, ColumnRef::Hidden);
    assert_eq!(
        g.computed,
        [
            computed(v(1), ValueExpr::Cast(column(v(1)), CastTarget::Int4)),
            computed(h(1), ValueExpr::Cast(column(h(1)), CastTarget::Text)),
        ]
    );
    let Some(Predicate::And(left, right)) = &merge.having else {
        panic!("{:?}", merge.having)
    };
    assert!(matches!(
        **left,
        Predicate::Compare {
            column: ColumnRef::Hidden(0),
            ..
        }
    ));
    assert!(matches!(
        **right,
        Predicate::Compare {
            column: ColumnRef::Hidden(1),
            ..
        }
    ));
    let order: Vec<ColumnRef> = merge.order_by.iter().map(|k| k.column).collect();
    assert_eq!(order, [ColumnRef::Hidden(1), ColumnRef::Visible(1)]);
}

#[test]
fn arithmetic_over_aggregates_and_keys_is_computed_after_merging() {
    let p = planner(2);
    let (text, merge) = fan_out(
        &p,
        "SELECT country, sum(x) / sum(y) AS ratio, round(avg(x), 2), count(*) * 2 FROM users GROUP BY country HAVING sum(x) - min(y) > 0 ORDER BY 100.0 * count(*) / sum(y) DESC",
    );
    assert_eq!(
        text,
        "SELECT country, sum(x) AS ratio, sum(x) AS \"round\", count(*) AS \"?column?\", sum(y) AS pgshard_hidden_0, count(x) AS pgshard_hidden_1, sum(x) AS pgshard_hidden_2, min(y) AS pgshard_hidden_3, count(*) AS pgshard_hidden_4 FROM users GROUP BY country ORDER BY 1"
    );
    let g = grouping(&merge);
    let (v, h) = (ColumnRef::Visible, ColumnRef::Hidden);
    use ArithmeticOp::*;
    assert_eq!(
        g.computed,
        [
            computed(
                v(1),
                ValueExpr::Arithmetic(Divide, column(v(1)), column(h(0)))
            ),
            computed(
                v(2),
                ValueExpr::Function(
                    NumericFunction::Round,
                    vec![
                        ValueExpr::Column(v(2)),
                        ValueExpr::Constant(Constant::Integer("2".into()))
                    ]
                )
            ),
            computed(
                v(3),
                ValueExpr::Arithmetic(
                    Multiply,
                    column(v(3)),
                    Box::new(ValueExpr::Constant(Constant::Integer("2".into())))
                )
            ),
            computed(
                h(2),
                ValueExpr::Arithmetic(Subtract, column(h(2)), column(h(3)))
            ),
            computed(
                h(4),
                ValueExpr::Arithmetic(
                    Divide,
                    Box::new(ValueExpr::Arithmetic(
                        Multiply,
                        Box::new(ValueExpr::Constant(Constant::Decimal("100.0".into()))),
                        column(h(4))
                    )),
                    column(h(0))
                )
            ),
        ]
    );
    assert!(matches!(
        merge.having,
        Some(Predicate::Compare {
            column: ColumnRef::Hidden(2),
            ..
        })
    ));
    assert_eq!(merge.order_by[0].column, h(4));
}

#[test]
fn an_avg_count_is_not_taken_for_a_count() {
    let p = planner(2);
    // The hidden count(x) of avg holds one shard's count until merged as avg's; HAVING
    // count(x) needs a combined count of its own.
    let (text, merge) = fan_out(&p, "SELECT avg(x) FROM users HAVING count(x) > 1");
    assert_eq!(
        text,
        "SELECT sum(x) AS avg, count(x) AS pgshard_hidden_0, count(x) AS pgshard_hidden_1 FROM users"
    );
    assert!(matches!(
        merge.having,
        Some(Predicate::Compare {
            column: ColumnRef::Hidden(1),
            ..
        })
    ));
    assert_eq!(
        grouping(&merge).aggregates[1],
        agg(ColumnRef::Hidden(1), AggregateKind::Count)
    );
}

#[test]
fn refusals_of_other_expressions_say_what_to_do() {
    let p = planner(2);
    let message = refused(&p, "SELECT sqrt(max(x) - min(x)) FROM users");
    assert!(
        message.contains("select the aggregates by themselves"),
        "{message}"
    );
    let message = refused(&p, "SELECT max(x)::date FROM users");
    assert!(
        message.contains("casts aggregates to smallint"),
        "{message}"
    );
    let message = refused(&p, "SELECT COALESCE(sum(x), y) FROM users GROUP BY y");
    assert!(message.contains("must be a literal"), "{message}");
}

#[test]
fn shards_sort_their_groups_by_the_keys_in_the_clients_order_when_it_allows() {
    let p = planner(2);
    // ORDER BY keys only: the shards sort as the client asked, then by the other keys.
    let (text, merge) = fan_out(
        &p,
        "SELECT city, country, count(*) FROM users GROUP BY country, city ORDER BY country DESC NULLS LAST",
    );
    assert_eq!(
        text,
        "SELECT city, country, count(*) FROM users GROUP BY country, city ORDER BY 2 DESC NULLS LAST, 1"
    );
    assert_eq!(
        grouping(&merge).sorted_by,
        [
            SortKey {
                column: ColumnRef::Visible(1),
                descending: true,
                nulls_first: false
            },
            SortKey {
                column: ColumnRef::Visible(0),
                descending: false,
                nulls_first: false
            }
        ]
    );
    // ORDER BY an aggregate: the shards sort by the keys, the merge sorts the groups.
    let (text, merge) = fan_out(
        &p,
        "SELECT country, count(*) FROM users GROUP BY country ORDER BY count(*) DESC LIMIT 5",
    );
    assert_eq!(
        text,
        "SELECT country, count(*) FROM users GROUP BY country ORDER BY 1"
    );
    assert_eq!(merge.order_by[0].column, ColumnRef::Visible(1));
    assert_eq!(
        grouping(&merge).sorted_by,
        [SortKey {
            column: ColumnRef::Visible(0),
            descending: false,
            nulls_first: false
        }]
    );
    // No keys, no order.
    let (text, merge) = fan_out(&p, "SELECT count(*) FROM users");
    assert_eq!(text, "SELECT count(*) FROM users");
    assert!(grouping(&merge).sorted_by.is_empty());
}
