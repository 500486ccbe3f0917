//! Text with a collation of its own across shards: the proxy orders and groups merged
//! text bytewise (the database's "C" collation), so a column whose collation orders
//! otherwise (ICU's `und-x-icu`: `apple` < `Banana`) must never be merged in the wrong
//! order. Ordering or grouping by such a column over several shards is refused with
//! 0A000 once a shard's order shows it; the same query on the column `COLLATE "C"` is
//! answered as one server answers it, streamed, as are groups of other types.

use anyhow::{ensure, Result};
use pgshard_tests::answer::{self, Order};
use pgshard_tests::{connect, start_sharded_proxy, Cluster, User};

const SCHEMA: &str =
    "CREATE TABLE people (id bigint PRIMARY KEY, name text COLLATE \"und-x-icu\", grp int)";

const NAMES: &[&str] = &[
    "apple", "Banana", "cherry", "Date", "elder", "Fig", "grape", "Hazel", "iris", "Juniper",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_its_own_collation_is_never_merged_out_of_order() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = start_sharded_proxy(&cluster, &[("people", "id")], 4).await?;
    let through = connect(proxy.addr, &User::app()).await?;
    through.batch_execute(SCHEMA).await?;
    let reference = cluster.shard(0).primary().client(&User::app()).await?;
    reference
        .batch_execute(&format!(
            "CREATE SCHEMA reference; SET search_path = reference; {SCHEMA}"
        ))
        .await?;
    let values: Vec<String> = (1..=200i64)
        .map(|i| format!("({i}, '{}', {})", NAMES[i as usize % NAMES.len()], i % 7))
        .collect();
    let insert = format!("INSERT INTO people VALUES {}", values.join(", "));
    through.batch_execute(&insert).await?;
    reference.batch_execute(&insert).await?;

    // The collation does order otherwise than bytes do.
    let first: String = reference
        .query_one("SELECT name FROM people ORDER BY name LIMIT 1", &[])
        .await?
        .get(0);
    ensure!(first == "apple", "ICU puts apple first, got {first}");

    for sql in [
        "SELECT name, id FROM people ORDER BY name, id",
        "SELECT name, count(*) FROM people GROUP BY name",
        "SELECT DISTINCT name FROM people",
    ] {
        for outcome in [
            answer::simple_query(&through, sql).await,
            answer::extended_query(&through, sql, &[]).await,
        ] {
            let code = outcome.as_ref().err().and_then(|e| e.code.clone());
            ensure!(
                code.as_deref() == Some("0A000"),
                "{sql}: refused with 0A000, got {}",
                answer::summary(&outcome)
            );
        }
        let alive: i32 = through.query_one("SELECT 1", &[]).await?.get(0);
        ensure!(alive == 1, "the session goes on after {sql}");
    }

    let answered = [
        (
            "SELECT name COLLATE \"C\" AS n, id FROM people ORDER BY 1, 2",
            Order::Exact,
        ),
        (
            "SELECT name COLLATE \"C\", count(*), min(id) FROM people GROUP BY 1 ORDER BY 1",
            Order::Exact,
        ),
        (
            "SELECT grp, count(*), sum(id) FROM people GROUP BY grp ORDER BY grp DESC",
            Order::Exact,
        ),
        (
            "SELECT grp, count(*) FROM people GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 3",
            Order::Exact,
        ),
    ];
    let mut differences = Vec::new();
    for (sql, order) in answered {
        differences
            .extend(answer::differences_in_both_protocols(&through, &reference, sql, order).await?);
    }
    ensure!(
        differences.is_empty(),
        "answers differ:\n{}",
        differences.join("\n")
    );
    Ok(())
}
