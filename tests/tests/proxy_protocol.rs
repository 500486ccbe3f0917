//! The wire protocol through the proxy, as real clients speak it: psql, and tokio-postgres
//! with prepared statements, binary parameters, transactions, COPY, cancel and pipelines.
//! Where PostgreSQL's own behaviour is the reference, the same thing runs directly on the
//! primary and through the proxy and the two must agree.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures::{pin_mut, SinkExt, TryStreamExt};
use pgshard_tests::wire::{self, BackendMessage, RawConnection};
use pgshard_tests::{
    run_tool, sqlstate, wait_for, Cluster, Node, ProxyOptions, ScratchDir, TestProxy, User,
};
use tokio_postgres::{Client, NoTls};

/// A primary without replicas, and a proxy in front of it.
async fn start(options: ProxyOptions) -> Result<(Cluster, TestProxy)> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(cluster.shard(0).primary(), options).await?;
    Ok((cluster, proxy))
}

fn primary(cluster: &Cluster) -> &Node {
    cluster.shard(0).primary()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_a_scripted_session_with_copy_through_the_proxy() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    let dir = ScratchDir::new("psql")?;
    let (input, output, script) = (dir.file("in.csv"), dir.file("out.csv"), dir.file("s.sql"));
    std::fs::write(&input, "3,three\n4,four\n5,\"five, with a comma\"\n")?;
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL);\n\
             BEGIN;\n\
             INSERT INTO psql_items VALUES (1, 'one'), (2, 'two');\n\
             COMMIT;\n\
             BEGIN;\n\
             INSERT INTO psql_items VALUES (99, 'rolled back');\n\
             ROLLBACK;\n\
             \\copy psql_items FROM '{}' WITH (FORMAT csv)\n\
             \\copy (SELECT id, upper(name) FROM psql_items ORDER BY id) TO '{}' WITH (FORMAT csv)\n\
             SELECT count(*), sum(id), string_agg(name, '|' ORDER BY id) FROM psql_items;\n",
            input.display(),
            output.display()
        ),
    )?;
    let script_arg = script.display().to_string();
    let args = ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-f", &script_arg];
    let run = run_tool(
        "psql",
        proxy.addr(),
        &User::app(),
        &args,
        Duration::from_secs(60),
    )
    .await?;
    ensure!(run.status.success(), "psql failed: {}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "CREATE TABLE",
            "BEGIN",
            "INSERT 0 2",
            "COMMIT",
            "BEGIN",
            "INSERT 0 1",
            "ROLLBACK",
            "COPY 3",
            "COPY 5",
            "5|15|one|two|three|four|five, with a comma",
        ],
        "psql's transcript: {}",
        run.describe()
    );
    assert_eq!(
        std::fs::read_to_string(&output)?,
        "1,ONE\n2,TWO\n3,THREE\n4,FOUR\n5,\"FIVE, WITH A COMMA\"\n"
    );
    assert_eq!(
        primary(&cluster)
            .query_one_i64("SELECT count(*) FROM psql_items WHERE id <> 99")
            .await?,
        5
    );

    // ON_ERROR_STOP: the error is reported and the script stops there (exit code 3).
    std::fs::write(
        &script,
        "SELECT 'before';\nSELECT * FROM no_such_table;\nSELECT 'after';\n",
    )?;
    let run = run_tool(
        "psql",
        proxy.addr(),
        &User::app(),
        &args,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert_eq!(run.stdout.trim(), "before", "{}", run.describe());
    assert!(
        run.stderr
            .contains("relation \"no_such_table\" does not exist"),
        "{}",
        run.describe()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_work_on_every_server_connection_of_the_pool() -> Result<()> {
    const CLIENTS: i32 = 6;
    const ROUNDS: i32 = 40;
    let (cluster, proxy) = start(ProxyOptions {
        pool_size: 3,
        ..ProxyOptions::default()
    })
    .await?;
    primary(&cluster)
        .execute("CREATE TABLE visits (client int, round int, pid int)")
        .await?;

    let clients = (0..CLIENTS).map(|c| {
        let proxy = &proxy;
        async move {
            let mut client = proxy.client(&User::app()).await?;
            let add = client.prepare("SELECT $1::int4 + $2::int4").await?;
            let insert = client
                .prepare("INSERT INTO visits VALUES ($1, $2, pg_backend_pid()) RETURNING pid")
                .await?;
            let mut pids = HashSet::new();
            for round in 0..ROUNDS {
                let tx = client.transaction().await?;
                let sum: i32 = tx.query_one(&add, &[&c, &round]).await?.get(0);
                ensure!(sum == c + round, "{c} + {round} = {sum}?");
                let pid: i32 = tx.query_one(&insert, &[&c, &round]).await?.get(0);
                pids.insert(pid);
                tx.commit().await?;
                // Outside a transaction too, and a statement that lives for one use only
                // (dropping it closes it).
                let sum: i32 = client.query_one(&add, &[&round, &1]).await?.get(0);
                ensure!(sum == round + 1);
                let once = client.prepare("SELECT $1::text || '!'").await?;
                let text: String = client.query_one(&once, &[&"hi"]).await?.get(0);
                ensure!(text == "hi!");
            }
            anyhow::Ok(pids)
        }
    });
    let pids_per_client = futures::future::try_join_all(clients).await?;

    let all: HashSet<i32> = pids_per_client.iter().flatten().copied().collect();
    assert!(
        all.len() <= 3,
        "{} server backends for a pool of 3",
        all.len()
    );
    assert!(
        pids_per_client.iter().any(|pids| pids.len() > 1),
        "no client's statements ran on more than one server connection: {pids_per_client:?}"
    );
    assert_eq!(
        primary(&cluster)
            .query_one_i64("SELECT count(*) FROM visits")
            .await?,
        i64::from(CLIENTS * ROUNDS)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_parameters_and_results_of_common_types_round_trip() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    primary(&cluster)
        .execute(
            "CREATE TABLE typed (id int4, big int8, name text, data bytea, ratio float8, \
             flag bool, at timestamp, missing int4)",
        )
        .await?;
    let client = proxy.client(&User::app()).await?;
    let data: Vec<u8> = vec![0, 1, 2, 0x7f, 0x80, 0xff];
    let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    let none: Option<i32> = None;

    let row = client
        .query_one(
            "SELECT $1::int4, $2::int8, $3::text, $4::bytea, $5::float8, $6::bool, \
             $7::timestamp, $8::int4",
            &[
                &i32::MIN,
                &i64::MAX,
                &"héllo ✓",
                &data,
                &-1.25e300f64,
                &true,
                &at,
                &none,
            ],
        )
        .await?;
    assert_eq!(row.get::<_, i32>(0), i32::MIN);
    assert_eq!(row.get::<_, i64>(1), i64::MAX);
    assert_eq!(row.get::<_, String>(2), "héllo ✓");
    assert_eq!(row.get::<_, Vec<u8>>(3), data);
    assert_eq!(row.get::<_, f64>(4), -1.25e300);
    assert!(row.get::<_, bool>(5));
    assert_eq!(row.get::<_, SystemTime>(6), at);
    assert_eq!(row.get::<_, Option<i32>>(7), None);

    // Stored through the proxy, the server holds exactly these values.
    client
        .execute(
            "INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &7i32,
                &-9_000_000_000i64,
                &"it's",
                &data,
                &0.5f64,
                &false,
                &at,
                &none,
            ],
        )
        .await?;
    let direct = primary(&cluster).client(&User::app()).await?;
    let stored = direct
        .query_one(
            "SELECT id::text, big::text, name, encode(data, 'hex'), ratio::text, flag::text, \
             at::text, missing IS NULL FROM typed",
            &[],
        )
        .await?;
    let text = |i| stored.get::<_, String>(i);
    assert_eq!(
        (
            text(0),
            text(1),
            text(2),
            text(3),
            text(4),
            text(5),
            text(6)
        ),
        (
            "7".to_string(),
            "-9000000000".to_string(),
            "it's".to_string(),
            "0001027f80ff".to_string(),
            "0.5".to_string(),
            "false".to_string(),
            "2023-11-14 22:13:20.123456".to_string()
        )
    );
    assert!(stored.get::<_, bool>(7));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_roll_back_and_stay_invisible_until_committed() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    primary(&cluster)
        .execute("CREATE TABLE ledger (id int PRIMARY KEY)")
        .await?;
    let mut client = proxy.client(&User::app()).await?;
    let other = proxy.client(&User::app()).await?;
    let insert = "INSERT INTO ledger VALUES ($1)";
    let count = "SELECT count(*) FROM ledger";

    let tx = client.transaction().await?;
    tx.execute(insert, &[&1i32]).await?;
    // Not yet committed: another client does not see it, this one does.
    assert_eq!(other.query_one(count, &[]).await?.get::<_, i64>(0), 0);
    assert_eq!(tx.query_one(count, &[]).await?.get::<_, i64>(0), 1);
    tx.commit().await?;
    assert_eq!(other.query_one(count, &[]).await?.get::<_, i64>(0), 1);

    let tx = client.transaction().await?;
    tx.execute(insert, &[&2i32]).await?;
    tx.rollback().await?;

    {
        // Dropped without commit: rolled back.
        let tx = client.transaction().await?;
        tx.execute(insert, &[&3i32]).await?;
    }

    let mut tx = client.transaction().await?;
    tx.execute(insert, &[&4i32]).await?;
    let savepoint = tx.savepoint("sp").await?;
    savepoint.execute(insert, &[&5i32]).await?;
    savepoint.rollback().await?;
    tx.commit().await?;

    // A failed statement aborts the transaction; its COMMIT rolls back.
    client.batch_execute("BEGIN").await?;
    client.execute(insert, &[&6i32]).await?;
    let duplicate = client.execute(insert, &[&1i32]).await.unwrap_err();
    assert_eq!(sqlstate(&duplicate), Some("23505"));
    let aborted = client.query_one(count, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&aborted), Some("25P02"));
    client.batch_execute("COMMIT").await?;

    let ids: Vec<i32> = primary(&cluster)
        .client(&User::app())
        .await?
        .query("SELECT id FROM ledger ORDER BY id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, [1, 4]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_and_to_stdout_carry_every_row() -> Result<()> {
    const ROWS: i32 = 5000;
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    primary(&cluster)
        .execute("CREATE TABLE copied (id int, name text)")
        .await?;
    let client = proxy.client(&User::app()).await?;
    let line = |i: i32| format!("{i}\tname {i}\n");

    let sink = client.copy_in("COPY copied FROM STDIN").await?;
    pin_mut!(sink);
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(700) {
        let text: String = chunk.iter().map(|&i| line(i)).collect();
        sink.send(Bytes::from(text)).await?;
    }
    assert_eq!(sink.finish().await?, ROWS as u64);
    assert_eq!(
        primary(&cluster)
            .query_one_i64("SELECT sum(id) FROM copied WHERE name = 'name ' || id")
            .await?,
        i64::from(ROWS) * i64::from(ROWS + 1) / 2
    );

    let stream = client
        .copy_out("COPY (SELECT id, name FROM copied ORDER BY id) TO STDOUT")
        .await?;
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    let copied_out: Vec<u8> = chunks.concat();
    let expected: String = (1..=ROWS).map(line).collect();
    assert_eq!(String::from_utf8(copied_out)?, expected);

    // Bad data fails the COPY, nothing of it is kept, and the client goes on.
    let sink = client.copy_in("COPY copied FROM STDIN").await?;
    pin_mut!(sink);
    sink.send(Bytes::from("1\tfine\nnot a number\tbad\n"))
        .await?;
    let error = sink.finish().await.unwrap_err();
    assert_eq!(sqlstate(&error), Some("22P02"), "{error}");
    {
        // A sink dropped unfinished makes the client send CopyFail.
        let sink = client.copy_in("COPY copied FROM STDIN").await?;
        pin_mut!(sink);
        sink.send(Bytes::from(line(ROWS + 1))).await?;
    }
    // A COPY inside a transaction that rolls back leaves nothing either.
    client.batch_execute("BEGIN").await?;
    let sink = client.copy_in("COPY copied FROM STDIN").await?;
    pin_mut!(sink);
    sink.send(Bytes::from(line(ROWS + 1))).await?;
    assert_eq!(sink.finish().await?, 1);
    client.batch_execute("ROLLBACK").await?;
    let count: i64 = client
        .query_one("SELECT count(*) FROM copied", &[])
        .await?
        .get(0);
    assert_eq!(count, i64::from(ROWS));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_only_the_query_of_the_client_it_names() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    let sleeper = proxy.client(&User::app()).await?;
    let bystander = proxy.client(&User::app()).await?;
    let token = sleeper.cancel_token();

    // With nothing running, a cancel is a no-op: it reaches no server, not even the one
    // the client's greeting came from. (Sent by hand, to wait until the proxy closes the
    // cancel connection, which it does once it has handled the request; a client that
    // does not wait races its own next query, with PostgreSQL too.)
    let (mut idle, greeting) = wire::RawConnection::login(proxy.addr(), &User::app()).await?;
    let keys = greeting
        .iter()
        .find(|m| m.tag == b'K')
        .context("no BackendKeyData")?;
    let pid = i32::from_be_bytes(keys.body[0..4].try_into()?);
    let key = i32::from_be_bytes(keys.body[4..8].try_into()?);
    let mut cancel = wire::RawConnection::connect(proxy.addr()).await?;
    cancel.send_bytes(&wire::cancel_request(pid, key)).await?;
    cancel.read_until_closed().await?;
    idle.send_bytes(&wire::query("SELECT 1")).await?;
    let replies = idle.read_until_ready().await?;
    assert!(
        replies.iter().all(|m| m.tag != b'E'),
        "a cancel with nothing running cancelled the next query: {replies:?}"
    );

    let monitor = primary(&cluster).client(&User::app()).await?;
    let long = tokio::spawn(async move {
        let result = sleeper.query_one("SELECT pg_sleep(30)", &[]).await;
        (sleeper, result)
    });
    wait_running(&monitor, "SELECT pg_sleep(30)").await?;
    let short = tokio::spawn(async move {
        let result = bystander
            .query_one("SELECT 42::int4 FROM pg_sleep(4)", &[])
            .await;
        result.map(|row| row.get::<_, i32>(0))
    });
    wait_running(&monitor, "SELECT 42::int4 FROM pg_sleep(4)").await?;

    let canceled_at = Instant::now();
    token.cancel_query(NoTls).await?;
    let (sleeper, result) = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .context("the canceled query did not end")??;
    let error = result.expect_err("pg_sleep(30) was not canceled");
    assert_eq!(sqlstate(&error), Some("57014"), "{error}");
    assert!(
        canceled_at.elapsed() < Duration::from_secs(5),
        "the cancel took {:?}",
        canceled_at.elapsed()
    );
    assert_eq!(short.await?.context("the other client's query failed")?, 42);
    // The canceled client carries on.
    let two: i32 = sleeper.query_one("SELECT 2", &[]).await?.get(0);
    assert_eq!(two, 2);
    Ok(())
}

/// Waits until the server runs `query` for some client.
async fn wait_running(monitor: &Client, query: &str) -> Result<()> {
    wait_for(
        &format!("the server to run {query}"),
        Duration::from_secs(20),
        || async {
            let running = monitor
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
                    &[&query],
                )
                .await
                .ok()
                .map(|row| row.get::<_, i64>(0));
            Ok(running.filter(|n| *n > 0).map(|_| ()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_a_pipeline_fails_only_its_own_statement() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    primary(&cluster)
        .execute("CREATE TABLE piped (id int)")
        .await?;
    let client = proxy.client(&User::app()).await?;
    let insert = client.prepare("INSERT INTO piped VALUES ($1)").await?;

    // tokio-postgres pipelines concurrent requests on one connection, each up to its Sync.
    let (a, b, c, d, e) = futures::join!(
        client.query_one("SELECT 1::int4", &[]),
        client.query_one("SELECT 1 / $1::int4", &[&0i32]),
        client.execute(&insert, &[&1i32]),
        client.query_one("SELECT * FROM no_such_table", &[]),
        client.execute(&insert, &[&2i32]),
    );
    assert_eq!(a?.get::<_, i32>(0), 1);
    assert_eq!(sqlstate(&b.unwrap_err()), Some("22012"));
    assert_eq!(c?, 1);
    assert_eq!(sqlstate(&d.unwrap_err()), Some("42P01"));
    assert_eq!(e?, 1);
    let ids: Vec<i32> = client
        .query("SELECT id FROM piped ORDER BY id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, [1, 2]);

    // One Sync for several statements: after the error the server skips to the Sync.
    // The proxy must relay exactly what the server says.
    let batch = [
        wire::parse("", "SELECT 1"),
        wire::bind("", &[]),
        wire::execute(),
        wire::parse("", "SELECT 1/0"),
        wire::bind("", &[]),
        wire::execute(),
        wire::parse("", "INSERT INTO piped VALUES (3)"),
        wire::bind("", &[]),
        wire::execute(),
        wire::sync(),
        wire::query("SELECT count(*) FROM piped"),
    ]
    .concat();
    let mut replies = Vec::new();
    for addr in [primary(&cluster).addr(), proxy.addr()] {
        let (mut conn, _) = RawConnection::login(addr, &User::app()).await?;
        conn.send_bytes(&batch).await?;
        let mut messages = conn.read_until_ready().await?;
        messages.extend(conn.read_until_ready().await?);
        replies.push(summarize(&messages));
    }
    assert_eq!(
        replies[0], replies[1],
        "direct (left) and through the proxy"
    );
    assert!(
        replies[0].contains(&"E 22012".to_string()),
        "{:?}",
        replies[0]
    );
    Ok(())
}

/// Messages reduced to what must match between two servers: tags, SQLSTATEs, row values
/// and command tags.
fn summarize(messages: &[BackendMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match m.tag {
            b'E' => format!("E {}", m.sqlstate().unwrap_or_default()),
            b'D' => format!("D {:?}", wire::data_row(m)),
            b'C' | b'Z' => format!(
                "{} {}",
                m.kind(),
                String::from_utf8_lossy(&m.body).trim_end_matches('\0')
            ),
            _ => m.kind().to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_statement_query_with_an_error_behaves_as_on_the_server() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions::default()).await?;
    let primary = primary(&cluster);
    let direct = primary.client(&User::app()).await?;
    let proxied = proxy.client(&User::app()).await?;
    let mut outcomes = Vec::new();
    for (client, table) in [(&direct, "direct_rows"), (&proxied, "proxied_rows")] {
        primary
            .execute(&format!("CREATE TABLE {table} (id int)"))
            .await?;
        outcomes.push(run_multi_statement_scripts(client, table).await?);
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "direct (left) and through the proxy"
    );
    let (errors, rows) = &outcomes[0];
    assert!(
        errors.iter().any(|e| e.as_deref() == Some("22012")),
        "{errors:?}"
    );
    assert!(!rows.is_empty() && !rows.contains(&1), "{rows:?}");
    Ok(())
}

/// Runs simple-query strings with errors in the middle; returns each one's SQLSTATE (or
/// none) and the rows left in `table`.
async fn run_multi_statement_scripts(
    client: &Client,
    table: &str,
) -> Result<(Vec<Option<String>>, Vec<i32>)> {
    let scripts = [
        // One implicit transaction: the error undoes the first INSERT too.
        "INSERT INTO {t} VALUES (1); SELECT 1/0; INSERT INTO {t} VALUES (2)",
        // COMMIT ends the implicit transaction early: 3 stays.
        "INSERT INTO {t} VALUES (3); COMMIT; INSERT INTO {t} VALUES (4); SELECT 1/0",
        "BEGIN; INSERT INTO {t} VALUES (5); COMMIT; INSERT INTO {t} VALUES (6); SELECT 1/0; \
         INSERT INTO {t} VALUES (7)",
        // Ends inside a failed explicit transaction...
        "BEGIN; INSERT INTO {t} VALUES (8); SELECT 1/0; COMMIT",
        // ...where everything fails until ROLLBACK.
        "SELECT 1",
        "ROLLBACK",
        "INSERT INTO {t} VALUES (9); SELECT count(*) FROM {t}",
    ];
    let mut errors = Vec::new();
    for script in scripts {
        let sql = script.replace("{t}", table);
        let result = client.batch_execute(&sql).await;
        errors.push(result.err().and_then(|e| sqlstate(&e).map(str::to_string)));
    }
    let rows = client
        .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok((errors, rows))
}
