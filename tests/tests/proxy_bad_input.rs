//! Malformed, oversized and unexpected input, sent by hand over TCP: the proxy closes that
//! one connection (with `08P01` where the protocol allows an answer), holds nothing back,
//! and goes on serving everyone else.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use pgshard_tests::wire::{self, BackendMessage, RawConnection};
use pgshard_tests::{connect, sqlstate, wait_for, Cluster, ProxyOptions, TestProxy, User};

/// Clients the proxy admits in these tests.
const MAX_CLIENTS: usize = 5;

/// A primary without replicas, and a proxy with one server connection, a small message
/// size limit and room for a few clients.
async fn start() -> Result<(Cluster, TestProxy)> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(
        cluster.shard(0).primary(),
        ProxyOptions {
            pool_size: 1,
            max_client_connections: MAX_CLIENTS as u32,
            max_message_size: "64kB".to_string(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    Ok((cluster, proxy))
}

/// After a bad connection: the proxy let go of it, and a normal client is served,
/// through the one server connection (so the bad client did not keep it).
async fn still_serves(proxy: &TestProxy, after: &str) -> Result<()> {
    wait_for(
        &format!("the proxy to let go of the client that sent {after}"),
        Duration::from_secs(5),
        || async { Ok((proxy.clients() == 0).then_some(())) },
    )
    .await?;
    let client = proxy
        .client(&User::app())
        .await
        .with_context(|| format!("a normal client after {after}"))?;
    let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
    ensure!(one == 1);
    Ok(())
}

/// Reads what the proxy says before closing; fails if it keeps the connection open.
async fn closes(conn: &mut RawConnection, what: &str) -> Result<Vec<BackendMessage>> {
    let started = Instant::now();
    let messages = conn
        .read_until_closed()
        .await
        .with_context(|| format!("the proxy did not close the connection after {what}"))?;
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "closing after {what} took {:?}",
        started.elapsed()
    );
    Ok(messages)
}

/// The only message is a FATAL error with `code`.
fn assert_fatal(messages: &[BackendMessage], code: &str, what: &str) {
    assert_eq!(messages.len(), 1, "{what}: {messages:?}");
    assert_eq!(messages[0].sqlstate().as_deref(), Some(code), "{what}");
    assert_eq!(messages[0].field(b'S').as_deref(), Some("FATAL"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_startup_packets_are_refused_and_the_proxy_serves_on() -> Result<()> {
    let (_cluster, proxy) = start().await?;

    // SSL and GSS encryption are declined with 'N'; the client goes on in plaintext.
    for (what, request) in [
        ("SSLRequest", wire::ssl_request()),
        ("GSSENCRequest", wire::gssenc_request()),
    ] {
        let mut conn = RawConnection::connect(proxy.addr()).await?;
        conn.send_bytes(&request).await?;
        assert_eq!(conn.read_byte().await?, b'N', "{what}");
        conn.send_bytes(&wire::startup_packet(&[
            ("user", "app"),
            ("database", "app"),
        ]))
        .await?;
        conn.authenticate(&User::app()).await?;
        conn.read_until_ready().await?;
        conn.send_bytes(&wire::query("SELECT 'plain'")).await?;
        let replies = conn.read_until_ready().await?;
        let rows: Vec<_> = replies.iter().map(wire::data_row).collect();
        assert!(
            rows.contains(&vec![Some("plain".to_string())]),
            "{what}: {replies:?}"
        );
        drop(conn);
        still_serves(&proxy, what).await?;
    }

    let cases: [(&str, Vec<u8>); 3] = [
        (
            "HTTP instead of a startup packet",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        // Claims 2 GB and sends a few bytes: refused at once, nothing allocated or awaited.
        (
            "a startup packet declaring 2 GB",
            [&0x7fff_ffffi32.to_be_bytes()[..], b"\x00\x03\x00\x00user"].concat(),
        ),
        (
            "a startup packet declaring 3 bytes",
            vec![0, 0, 0, 3, 0, 0, 0, 0],
        ),
    ];
    for (what, bytes) in cases {
        let mut conn = RawConnection::connect(proxy.addr()).await?;
        conn.send_bytes(&bytes).await?;
        let messages = closes(&mut conn, what).await?;
        assert_fatal(&messages, "08P01", what);
        still_serves(&proxy, what).await?;
    }

    let mut conn = RawConnection::connect(proxy.addr()).await?;
    conn.send_bytes(&[&8i32.to_be_bytes()[..], &0x0002_0000i32.to_be_bytes()].concat())
        .await?;
    let messages = closes(&mut conn, "protocol 2.0").await?;
    assert_fatal(&messages, "0A000", "protocol 2.0");
    still_serves(&proxy, "protocol 2.0").await?;

    let mut conn = RawConnection::connect(proxy.addr()).await?;
    conn.send_bytes(&wire::startup_packet(&[("database", "app")]))
        .await?;
    let messages = closes(&mut conn, "no user name").await?;
    assert_fatal(&messages, "28000", "no user name");
    still_serves(&proxy, "no user name").await?;

    // A CancelRequest with keys the proxy never issued: closed without a word.
    let mut conn = RawConnection::connect(proxy.addr()).await?;
    conn.send_bytes(&wire::cancel_request(12345, 67890)).await?;
    let messages = closes(&mut conn, "a CancelRequest with unknown keys").await?;
    assert!(messages.is_empty(), "{messages:?}");
    still_serves(&proxy, "a CancelRequest").await?;

    // A client that connects and leaves without a word.
    drop(RawConnection::connect(proxy.addr()).await?);
    still_serves(&proxy, "nothing").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_after_login_close_only_that_connection() -> Result<()> {
    let (cluster, proxy) = start().await?;
    let primary = cluster.shard(0).primary();

    let too_long = [&[b'Q'][..], &(100_i32 << 20).to_be_bytes(), b"SELECT"].concat();
    let too_short = [&[b'Q'][..], &2i32.to_be_bytes()].concat();
    let cases: [(&str, Vec<u8>, &str); 2] = [
        ("a 100 MB message (limit 64 kB)", too_long, "08P01"),
        ("a message declaring 2 bytes", too_short, "08P01"),
    ];
    for (what, bytes, code) in cases {
        let (mut conn, _) = RawConnection::login(proxy.addr(), &User::app()).await?;
        conn.send_bytes(&bytes).await?;
        let messages = closes(&mut conn, what).await?;
        assert_fatal(&messages, code, what);
        still_serves(&proxy, what).await?;
    }

    // An unknown message type: refused as PostgreSQL refuses it.
    let unknown = wire::message(b'z', b"");
    let mut refusals = Vec::new();
    for addr in [primary.addr(), proxy.addr()] {
        let (mut conn, _) = RawConnection::login(addr, &User::app()).await?;
        conn.send_bytes(&unknown).await?;
        let messages = closes(&mut conn, "message type 'z'").await?;
        assert_fatal(&messages, "08P01", "message type 'z'");
        refusals.push(messages[0].field(b'M'));
    }
    assert_eq!(
        refusals[1], refusals[0],
        "through the proxy (left) and directly (right)"
    );
    still_serves(&proxy, "an unknown message type").await?;

    // A message cut short by the end of the stream, inside a transaction that holds the
    // only server connection: the connection is dropped and the pool gets its slot back.
    let (mut conn, _) = RawConnection::login(proxy.addr(), &User::app()).await?;
    conn.send_bytes(&wire::query("BEGIN")).await?;
    conn.read_until_ready().await?;
    let truncated = wire::query("SELECT 'never complete'");
    conn.send_bytes(&truncated[..truncated.len() - 5]).await?;
    conn.shutdown_write().await?;
    closes(&mut conn, "a truncated message").await?;
    still_serves(&proxy, "a truncated message").await?;

    // A message just under the limit is fine.
    let client = proxy.client(&User::app()).await?;
    let big = "x".repeat(60 * 1024);
    let echoed: String = client.query_one("SELECT $1::text", &[&big]).await?.get(0);
    assert_eq!(echoed.len(), big.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_limit_are_refused_with_53300() -> Result<()> {
    let (_cluster, proxy) = start().await?;
    let mut admitted = Vec::new();
    for _ in 0..MAX_CLIENTS {
        admitted.push(proxy.client(&User::app()).await?);
    }
    for _ in 0..3 {
        let error = connect(proxy.addr(), &User::app()).await.unwrap_err();
        assert_eq!(sqlstate(&error), Some("53300"), "{error}");
        let message = error.as_db_error().map(|db| db.message().to_string());
        assert_eq!(message.as_deref(), Some("sorry, too many clients already"));
    }
    // The admitted clients are unaffected.
    for client in &admitted {
        let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
        assert_eq!(one, 1);
    }
    // Once one leaves, there is room again.
    admitted.pop();
    wait_for("a client to leave", Duration::from_secs(5), || async {
        Ok((proxy.clients() < MAX_CLIENTS).then_some(()))
    })
    .await?;
    let client = proxy.client(&User::app()).await?;
    let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
    assert_eq!(one, 1);
    Ok(())
}

/// Login places in these tests, on top of the client places.
const MAX_LOGINS: usize = 8;

/// Like [`start`], with room for `MAX_LOGINS` logins in progress that must end within
/// `login_timeout`.
async fn start_with_login_limits(login_timeout: Duration) -> Result<(Cluster, TestProxy)> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(
        cluster.shard(0).primary(),
        ProxyOptions {
            pool_size: 1,
            max_client_connections: MAX_CLIENTS as u32,
            proxy_extra: format!(
                "max_logins_in_progress = {MAX_LOGINS}\nclient_login_timeout = \"{}ms\"",
                login_timeout.as_millis()
            ),
            ..ProxyOptions::default()
        },
    )
    .await?;
    Ok((cluster, proxy))
}

/// Waits until the proxy holds `held` connections, `logins` of them logging in.
async fn holds(proxy: &TestProxy, held: usize, logins: usize) -> Result<()> {
    wait_for(
        &format!("the proxy to hold {held} connections, {logins} logging in"),
        Duration::from_secs(5),
        || async {
            Ok(((proxy.clients(), proxy.logins_in_progress()) == (held, logins)).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// Silent connections used to take client places until the login timeout (60s, then
/// again): `max_client_connections` of them locked every client out. They now take only
/// login places; with those all taken a new connection is refused at once, never held,
/// and the clients already in are not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_never_lock_clients_out() -> Result<()> {
    let login_timeout = Duration::from_secs(3);
    let (_cluster, proxy) = start_with_login_limits(login_timeout).await?;
    let mut silent = Vec::new();
    for _ in 0..MAX_CLIENTS {
        silent.push(RawConnection::connect(proxy.addr()).await?);
    }
    holds(&proxy, MAX_CLIENTS, MAX_CLIENTS).await?;
    let started = Instant::now();
    let client = proxy.client(&User::app()).await?;
    let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
    ensure!(one == 1);
    let took = started.elapsed();
    ensure!(
        took < Duration::from_secs(1),
        "a client behind {MAX_CLIENTS} silent connections took {took:?} to log in"
    );

    // Every login place taken: refused at once with 53300, nothing held.
    for _ in MAX_CLIENTS..MAX_LOGINS {
        silent.push(RawConnection::connect(proxy.addr()).await?);
    }
    holds(&proxy, MAX_LOGINS + 1, MAX_LOGINS).await?;
    for _ in 0..3 {
        let started = Instant::now();
        let error = connect(proxy.addr(), &User::app())
            .await
            .err()
            .context("a login beyond every login place")?;
        assert_eq!(sqlstate(&error), Some("53300"), "{error}");
        ensure!(
            started.elapsed() < Duration::from_secs(1),
            "refused after {:?}",
            started.elapsed()
        );
    }
    ensure!(
        proxy.clients() == MAX_LOGINS + 1,
        "the refused connections are held: {}",
        proxy.clients()
    );
    let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
    ensure!(one == 1, "the client already in is served");

    // The silent connections are let go at client_login_timeout, then logins work again.
    for conn in &mut silent {
        let closed = closes(conn, "a silent login").await;
        ensure!(
            matches!(&closed, Ok(messages) if messages.is_empty()),
            "{closed:?}"
        );
    }
    holds(&proxy, 1, 0).await?;
    let another = proxy.client(&User::app()).await?;
    let one: i32 = another.query_one("SELECT 1", &[]).await?.get(0);
    ensure!(one == 1);
    Ok(())
}

/// Before login, password and SASL messages are as small as PostgreSQL keeps them: a
/// 100 kB SASL message (the limit was max_message_size, 64 MB by default) is refused with
/// 08P01 before its body is read, and the proxy serves a bystander.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_password_message_is_refused_with_08p01() -> Result<()> {
    let (_cluster, proxy) = start_with_login_limits(Duration::from_secs(15)).await?;
    let bystander = proxy.client(&User::app()).await?;
    let mut conn = RawConnection::connect(proxy.addr()).await?;
    conn.send_bytes(&wire::startup_packet(&[
        ("user", "app"),
        ("database", "app"),
    ]))
    .await?;
    let ask = conn.expect_message().await?;
    ensure!(ask.kind() == 'R', "{ask:?}");
    let huge = wire::message(b'p', &vec![b'x'; 100 * 1024]);
    conn.send_bytes(&huge[..1000]).await?;
    let messages = closes(&mut conn, "a 100 kB SASL message").await?;
    assert_fatal(&messages, "08P01", "a 100 kB SASL message");
    let said = messages[0].field(b'M').unwrap_or_default();
    ensure!(said.contains("102404 bytes"), "{said}");
    let one: i32 = bystander.query_one("SELECT 1", &[]).await?.get(0);
    ensure!(one == 1);
    drop(bystander);
    still_serves(&proxy, "a 100 kB SASL message").await
}

/// A client asking for protocol 3.2 and an option gets NegotiateProtocolVersion from the
/// proxy exactly as from PostgreSQL, and goes on in 3.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_is_negotiated_down_as_postgres_does() -> Result<()> {
    let (cluster, proxy) = start().await?;
    let primary = cluster.shard(0).primary();
    let mut negotiated = Vec::new();
    for addr in [primary.addr(), proxy.addr()] {
        let mut packet = wire::startup_packet(&[
            ("user", "app"),
            ("database", "app"),
            ("_pq_.pgshard_test", "on"),
        ]);
        packet[4..8].copy_from_slice(&0x0003_0002i32.to_be_bytes());
        let mut conn = RawConnection::connect(addr).await?;
        conn.send_bytes(&packet).await?;
        let first = conn.expect_message().await?;
        ensure!(first.kind() == 'v', "{addr}: {first:?}");
        negotiated.push(first);
        conn.authenticate(&User::app()).await?;
        conn.read_until_ready().await?;
        conn.send_bytes(&wire::query("SELECT 'in 3.0'")).await?;
        let replies = conn.read_until_ready().await?;
        let rows: Vec<_> = replies.iter().map(wire::data_row).collect();
        ensure!(
            rows.contains(&vec![Some("in 3.0".to_string())]),
            "{addr}: {replies:?}"
        );
    }
    assert_eq!(
        negotiated[1], negotiated[0],
        "through the proxy (left) and directly (right)"
    );
    Ok(())
}

/// Prepares distinct statements of about 4 kB each until the proxy refuses one; returns
/// the statements prepared before that.
async fn prepare_until_refused(
    client: &tokio_postgres::Client,
    what: &str,
) -> Result<Vec<(tokio_postgres::Statement, String)>> {
    let mut prepared = Vec::new();
    for i in 0..100 {
        let padding = format!("{i:04}{}", "x".repeat(4000));
        let sql = format!("SELECT '{padding}' || $1::text");
        match client.prepare(&sql).await {
            Ok(statement) => prepared.push((statement, padding)),
            Err(e) => {
                ensure!(
                    sqlstate(&e) == Some("53200"),
                    "{what}: statement {i} failed with {e:?}, not 53200"
                );
                let message = e.as_db_error().map_or("", |db| db.message());
                ensure!(
                    message.contains("max_prepared_statement_memory"),
                    "{what}: the refusal names no setting: {message}"
                );
                return Ok(prepared);
            }
        }
    }
    anyhow::bail!("{what}: 100 statements of 4 kB were prepared within a 64 kB limit")
}

/// A client preparing without end gets 53200 past `max_prepared_statement_memory`; its
/// earlier statements still run, closing statements makes room, a refusal inside a
/// transaction aborts it as PostgreSQL's own errors do, and other clients are not
/// limited by it. On one shard (statements prepared on servers) and on a sharded database
/// (statements kept by the proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_preparing_without_end_is_refused_with_53200() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let limit = "max_prepared_statement_memory = \"64kB\"";
    let plain = TestProxy::start(
        cluster.shard(0).primary(),
        ProxyOptions {
            pool_size: 2,
            proxy_extra: limit.to_string(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let sharded =
        pgshard_tests::start_sharded_proxy_with(&cluster, &[("kept", "id")], 2, limit).await?;
    let setup = connect(sharded.addr, &User::app()).await?;
    setup
        .batch_execute("CREATE TABLE kept (id bigint PRIMARY KEY, note text)")
        .await?;
    for (what, addr) in [("one shard", plain.addr()), ("sharded", sharded.addr)] {
        let client = connect(addr, &User::app()).await?;
        let mut prepared = prepare_until_refused(&client, what).await?;
        ensure!(
            (12..=16).contains(&prepared.len()),
            "{what}: {} statements of 4 kB fit in 64 kB",
            prepared.len()
        );
        // Every statement prepared before the refusal still runs, and answers its own text.
        for (statement, padding) in [&prepared[0], &prepared[prepared.len() - 1]] {
            let value: String = client.query_one(statement, &[&"!"]).await?.get(0);
            ensure!(value == format!("{padding}!"), "{what}: wrong answer");
        }
        // Another client is not limited by this one's statements.
        let bystander = connect(addr, &User::app()).await?;
        let other = bystander.prepare("SELECT $1::int + 1").await?;
        let two: i32 = bystander.query_one(&other, &[&1i32]).await?.get(0);
        ensure!(two == 2, "{what}: the bystander got {two}");
        // Closing statements makes room again.
        prepared.truncate(prepared.len() - 4);
        client.simple_query("SELECT 1").await?;
        let again = client
            .prepare(&format!("SELECT '{}' || $1::text", "y".repeat(4000)))
            .await
            .with_context(|| format!("{what}: preparing after closing four statements"))?;
        let value: String = client.query_one(&again, &[&"!"]).await?.get(0);
        ensure!(
            value.ends_with("y!"),
            "{what}: wrong answer after making room"
        );
        // A refusal inside a transaction aborts it: the write before it is not kept.
        client.batch_execute("BEGIN").await?;
        client
            .execute("INSERT INTO kept VALUES (1, $1)", &[&what])
            .await?;
        let refused = prepare_until_refused(&client, what).await?;
        let after = client.simple_query("SELECT 1").await.err();
        ensure!(
            after.as_ref().and_then(sqlstate) == Some("25P02"),
            "{what}: after a refusal the transaction went on: {after:?}"
        );
        client.batch_execute("ROLLBACK").await?;
        drop(refused);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM kept", &[])
            .await?
            .get(0);
        ensure!(rows == 0, "{what}: the aborted transaction's row was kept");
    }
    Ok(())
}
