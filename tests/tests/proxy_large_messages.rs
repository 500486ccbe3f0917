//! Large messages on a one-shard database go to the server as they arrive, never held
//! whole: clients sending queries, Binds and COPY data that together far exceed the
//! proxy's message budget are all served at once, each with exactly what it sent, and
//! what a large query does to its session is tracked as for a small one.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures::SinkExt;
use pgshard_tests::{sqlstate, Cluster, ProxyOptions, TestProxy, User};

/// Each large message: more than half the budget below, so two could not be held at once.
const LARGE: usize = 6 << 20;

/// A primary and a proxy whose large-message budget holds one large message only.
async fn start(pool_size: u32) -> Result<(Cluster, TestProxy)> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(
        cluster.shard(0).primary(),
        ProxyOptions {
            pool_size,
            max_message_size: "8MB".to_string(),
            proxy_extra: "max_message_memory = \"8MB\"\nmessage_memory_wait = \"200ms\""
                .to_string(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    Ok((cluster, proxy))
}

/// `len` letters that differ with `seed` and with the position, so that a byte lost,
/// repeated or taken from another client's message shows.
fn payload(seed: usize, len: usize) -> String {
    (0..len)
        .map(|i| char::from(b'a' + ((i * 7 + i / 4096 + seed * 13) % 26) as u8))
        .collect()
}

/// Four clients at once each send a large query, a large unnamed Parse, a Bind with a
/// large parameter and a large COPY row (4 × 4 × 6 MB against an 8 MB budget); every row
/// then holds exactly what its client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_beyond_the_budget_are_all_streamed_at_once() -> Result<()> {
    let (cluster, proxy) = start(4).await?;
    let direct = cluster.shard(0).primary().client(&User::app()).await?;
    direct
        .batch_execute("CREATE TABLE big (id int PRIMARY KEY, kind text, body text, data bytea)")
        .await?;
    let mut tasks = Vec::new();
    for client in 0..4usize {
        let addr = proxy.addr();
        tasks.push(tokio::spawn(async move {
            let conn = pgshard_tests::connect(addr, &User::app()).await?;
            let id = (client * 4) as i32;
            let text = payload(client, LARGE);
            conn.simple_query(&format!(
                "INSERT INTO big (id, kind, body) VALUES ({id}, 'query', '{text}')"
            ))
            .await
            .with_context(|| format!("client {client}: the large query"))?;
            let text = payload(client + 300, LARGE);
            conn.query_typed(
                &format!(
                    "INSERT INTO big (id, kind, body) VALUES ({}, 'parse', '{text}')",
                    id + 3
                ),
                &[],
            )
            .await
            .with_context(|| format!("client {client}: the large unnamed Parse"))?;
            let data = payload(client + 100, LARGE).into_bytes();
            conn.execute(
                "INSERT INTO big (id, kind, data) VALUES ($1, 'bind', $2)",
                &[&(id + 1), &data],
            )
            .await
            .with_context(|| format!("client {client}: the large Bind"))?;
            let sink = conn.copy_in("COPY big (id, kind, body) FROM STDIN").await?;
            futures::pin_mut!(sink);
            let row = format!("{}\tcopy\t{}\n", id + 2, payload(client + 200, LARGE));
            sink.send(Bytes::from(row)).await?;
            let copied = sink
                .finish()
                .await
                .with_context(|| format!("client {client}: the large COPY row"))?;
            ensure!(copied == 1, "client {client}: COPY said {copied} rows");
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rows: i64 = direct
        .query_one("SELECT count(*) FROM big", &[])
        .await?
        .get(0);
    ensure!(rows == 16, "{rows} rows instead of 16");
    for client in 0..4usize {
        let id = (client * 4) as i32;
        let checks = [
            (id, "body", payload(client, LARGE)),
            (
                id + 1,
                "convert_from(data, 'UTF8')",
                payload(client + 100, LARGE),
            ),
            (id + 2, "body", payload(client + 200, LARGE)),
            (id + 3, "body", payload(client + 300, LARGE)),
        ];
        for (row, column, expected) in checks {
            let same: bool = direct
                .query_one(
                    &format!("SELECT {column} = $2 FROM big WHERE id = $1"),
                    &[&row, &expected],
                )
                .await?
                .get(0);
            ensure!(
                same,
                "client {client}: row {row} does not hold what was sent"
            );
        }
    }
    Ok(())
}

/// What a large query does to its session is tracked while it streams: a SET in it is
/// the client's alone (replayed for it, never seen by another client), a session
/// advisory lock in it pins the client to its server connection, and a statement the
/// proxy refuses is refused, before anything runs, whether it comes first or last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_query_keeps_its_session_effects() -> Result<()> {
    let (_cluster, proxy) = start(2).await?;
    let text = payload(1, LARGE);
    let a = proxy.client(&User::app()).await?;
    let b = proxy.client(&User::app()).await?;
    let length = |rows: &[tokio_postgres::SimpleQueryMessage]| {
        rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
    };
    let replies = a
        .simple_query(&format!(
            "SET application_name = 'streamed_a'; SELECT length('{text}')"
        ))
        .await?;
    ensure!(length(&replies) == Some(LARGE.to_string()), "wrong length");
    for _ in 0..10 {
        let mine: String = a.query_one("SHOW application_name", &[]).await?.get(0);
        ensure!(
            mine == "streamed_a",
            "the client lost its own setting: {mine}"
        );
        let theirs: String = b.query_one("SHOW application_name", &[]).await?.get(0);
        ensure!(
            theirs != "streamed_a",
            "another client got the streamed SET"
        );
    }

    let replies = a
        .simple_query(&format!("SELECT pg_advisory_lock(7), length('{text}')"))
        .await?;
    ensure!(replies.len() >= 2, "no answer to the locking query");
    let holder: i32 = b
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 7",
            &[],
        )
        .await?
        .get(0);
    for _ in 0..10 {
        let mine: i32 = a.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
        ensure!(
            mine == holder,
            "the locking client left its server connection"
        );
        let theirs: i32 = b.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
        ensure!(
            theirs != holder,
            "another client got the server connection holding the lock"
        );
    }

    // Refused first: nothing was sent, the session goes on.
    let c = proxy.client(&User::app()).await?;
    let refused = c
        .simple_query(&format!("EXECUTE pgshard_1; SELECT length('{text}')"))
        .await
        .err()
        .context("a large query naming a proxy statement first was run")?;
    ensure!(sqlstate(&refused) == Some("42939"), "{refused:?}");
    c.simple_query("SELECT 1")
        .await
        .context("after the refusal")?;
    // Refused last: part of it went to the server, whose connection is closed.
    let refused = c
        .simple_query(&format!("SELECT length('{text}'); EXECUTE pgshard_1"))
        .await
        .err()
        .context("a large query naming a proxy statement last was run")?;
    ensure!(sqlstate(&refused) == Some("42939"), "{refused:?}");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !c.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("the connection stayed open")?;
    let one: i32 = b.query_one("SELECT 1", &[]).await?.get(0);
    ensure!(one == 1);
    Ok(())
}
