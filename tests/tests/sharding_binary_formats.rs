//! Every column type in binary format across shards, as pgx, asyncpg and JDBC ask for
//! results: queries whose rows the proxy orders, groups or aggregates, over a table of
//! many built-in types (bytea, json, jsonb, interval, timetz, inet, macaddr, arrays),
//! answered through pgshard on two shards exactly as one server holding all the rows
//! answers them, over the extended protocol (binary results) and the simple one (text).
//!
//! The reference is the same table and rows in a schema of its own on shard 0's server.

use anyhow::{ensure, Result};
use pgshard_tests::answer::{self, Order};
use pgshard_tests::{connect, start_sharded_proxy, Cluster, User};

const SCHEMA: &str = "CREATE TABLE things (
    id bigint PRIMARY KEY, grp int, data bytea, doc json, docb jsonb, span interval,
    at timetz, addr inet, mac macaddr, tags text[], nums int[], amount numeric,
    note varchar(20), flag \"char\")";

/// Row `i`'s values, as SQL.
fn row(i: i64) -> String {
    format!(
        "({i}, {grp}, '\\x{i:04x}ff', '{{\"i\": {i}}}', '{{\"i\": {i}, \"k\": [1, 2]}}', \
         '{days} days {hours}:00:00', '{h:02}:30:00+0{z}', '10.0.{o}.{i}', \
         '08:00:2b:01:02:{m:02x}', '{{a{grp},\"b c\",NULL}}', '{{{i},{grp}}}', {i}.{i}, 'note {grp}', \
         '{flag}')",
        grp = i % 5,
        days = i % 3,
        hours = (i % 4) * 24,
        h = i % 24,
        z = i % 3,
        o = i % 7,
        m = i % 256,
        flag = (b'a' + (i % 26) as u8) as char,
    )
}

/// Queries the proxy merges (ordered, grouped, aggregated, distinct), whose rows are in
/// a total order unless marked `Any`.
const QUERIES: &[(&str, Order)] = &[
    (
        "SELECT id, data, doc, docb, span, at, addr, mac, tags, nums, amount, note, flag \
         FROM things ORDER BY id",
        Order::Exact,
    ),
    (
        "SELECT * FROM things ORDER BY id DESC LIMIT 17",
        Order::Exact,
    ),
    (
        "SELECT * FROM things WHERE grp = 2 ORDER BY amount",
        Order::Exact,
    ),
    (
        "SELECT docb, id FROM things ORDER BY id OFFSET 5 LIMIT 9",
        Order::Exact,
    ),
    // '1 day' and '24:00:00' are one group: PostgreSQL compares intervals by their span.
    (
        "SELECT count(*), min(id) FROM things GROUP BY span ORDER BY 2",
        Order::Exact,
    ),
    ("SELECT DISTINCT tags FROM things", Order::Any),
    ("SELECT min(span), max(span) FROM things", Order::Exact),
    (
        "SELECT id, span FROM things ORDER BY span, id",
        Order::Exact,
    ),
    (
        "SELECT nums, count(*) FROM things GROUP BY nums",
        Order::Any,
    ),
    (
        "SELECT tags, sum(amount) FROM things GROUP BY tags",
        Order::Any,
    ),
    ("SELECT DISTINCT addr FROM things", Order::Any),
    (
        "SELECT data, count(*) FROM things GROUP BY data HAVING count(*) > 0",
        Order::Any,
    ),
    (
        "SELECT grp, count(*), sum(amount), avg(amount) FROM things GROUP BY grp ORDER BY grp",
        Order::Exact,
    ),
    (
        "SELECT mac, at FROM things ORDER BY id LIMIT 3",
        Order::Exact,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_in_binary_and_text_across_shards_answers_as_postgres() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = start_sharded_proxy(&cluster, &[("things", "id")], 4).await?;
    let through = connect(proxy.addr, &User::app()).await?;
    through.batch_execute(SCHEMA).await?;
    let reference = cluster.shard(0).primary().client(&User::app()).await?;
    reference
        .batch_execute(&format!(
            "CREATE SCHEMA reference; SET search_path = reference; {SCHEMA}"
        ))
        .await?;
    for first in (1..=240i64).step_by(40) {
        let values: Vec<String> = (first..first + 40).map(row).collect();
        let insert = format!("INSERT INTO things VALUES {}", values.join(", "));
        through.batch_execute(&insert).await?;
        reference.batch_execute(&insert).await?;
    }
    let spread: i64 = cluster
        .shard(1)
        .primary()
        .client(&User::app())
        .await?
        .query_one("SELECT count(*) FROM public.things", &[])
        .await?
        .get(0);
    ensure!(
        (40..200).contains(&spread),
        "rows are spread over both shards: {spread} on shard 1"
    );

    let mut differences = Vec::new();
    for &(sql, order) in QUERIES {
        differences
            .extend(answer::differences_in_both_protocols(&through, &reference, sql, order).await?);
    }
    ensure!(
        differences.is_empty(),
        "{} of {} answers differ:\n{}",
        differences.len(),
        QUERIES.len() * 2,
        differences.join("\n")
    );
    Ok(())
}
