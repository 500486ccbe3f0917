//! What the parse cache saves: classifying a statement from scratch (parse and walk)
//! against finding it in the cache, for a point read, a join with a CTE and an INSERT.

use criterion::{criterion_group, criterion_main, Criterion};
use pgshard_router::{classify, Classifier};
use std::hint::black_box;

const STATEMENTS: &[(&str, &str)] = &[
    ("point_select", "SELECT id, name, email FROM users WHERE id = $1"),
    (
        "cte_join",
        "WITH recent AS (SELECT customer_id, sum(total) AS spent FROM orders \
         WHERE created_at > now() - interval '7 days' GROUP BY customer_id) \
         SELECT c.id, c.name, r.spent FROM customers c JOIN recent r ON r.customer_id = c.id \
         LEFT JOIN regions g ON g.id = c.region_id WHERE g.name = $1 ORDER BY r.spent DESC LIMIT 20",
    ),
    (
        "insert",
        "INSERT INTO events (user_id, kind, payload, created_at) VALUES ($1, $2, $3, now())",
    ),
];

fn parse_versus_cache_hit(c: &mut Criterion) {
    let classifier = Classifier::default();
    for (name, sql) in STATEMENTS {
        let mut group = c.benchmark_group(*name);
        group.bench_function("parse", |b| b.iter(|| classify(black_box(sql))));
        classifier.classify(sql);
        group.bench_function("cache_hit", |b| {
            b.iter(|| classifier.classify(black_box(sql)))
        });
        group.finish();
    }
}

criterion_group!(benches, parse_versus_cache_hit);
criterion_main!(benches);
