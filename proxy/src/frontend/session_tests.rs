//! Fast tests of what a session does for its client, against scripted servers: every
//! case runs on a one-shard database (pass-through sessions) and on a two-shard one
//! (planned sessions), so both database kinds are held to the same behaviour.

use std::sync::Arc;

use crate::testing::scripted_server::{echo, echo_reply, Reply, ScriptedServer, Statement};
use crate::testing::{bind, describe, execute, flush, parse, start_proxy, sync, TestClient};
use crate::ProxyHandle;

/// A proxy over `shards` scripted servers, and the servers.
struct Bed {
    proxy: ProxyHandle,
    servers: Vec<ScriptedServer>,
}

impl Bed {
    async fn start(shards: usize, pool_mode: &str, pool_size: u32) -> Bed {
        Bed::with_script(shards, pool_mode, pool_size, echo()).await
    }

    async fn with_script(
        shards: usize,
        pool_mode: &str,
        pool_size: u32,
        script: crate::testing::scripted_server::Script,
    ) -> Bed {
        Bed::configured(shards, pool_mode, pool_size, script, "").await
    }

    /// With `extra` lines for `[proxy]`.
    async fn configured(
        shards: usize,
        pool_mode: &str,
        pool_size: u32,
        script: crate::testing::scripted_server::Script,
        extra: &str,
    ) -> Bed {
        let mut servers = Vec::new();
        for _ in 0..shards {
            servers.push(ScriptedServer::start(script.clone()).await);
        }
        let refs: Vec<&ScriptedServer> = servers.iter().collect();
        let proxy = start_proxy(&refs, pool_mode, pool_size, extra).await;
        Bed { proxy, servers }
    }

    async fn client(&self, params: &[(&str, &str)]) -> TestClient {
        TestClient::connect(&self.proxy, params).await
    }

    /// Every statement any server ran.
    fn ran(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(|s| s.ran().into_iter().map(|(_, sql)| sql))
            .collect()
    }

    fn violations(&self) -> Vec<String> {
        self.servers.iter().flat_map(|s| s.violations()).collect()
    }
}

const KINDS: [(usize, &str); 2] = [(1, "one shard"), (2, "two shards")];

/// lib/pq's round trips: Parse("") + Describe + Sync, then Bind("") + Execute + Sync. With
/// one server connection for both clients, the second client's Parse replaces the first's
/// unnamed statement there; each client must still run its own.
#[tokio::test]
async fn the_unnamed_statement_is_the_clients_own_in_its_next_round_trip() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        let mut b = bed.client(&[]).await;
        a.send(&[
            parse("", "SELECT $1::text AS a"),
            describe(b'S', ""),
            sync(),
        ])
        .await;
        let described = a.replies().await;
        assert!(described.errors.is_empty(), "{kind}: {described:?}");
        b.send(&[
            parse("", "SELECT $1::int, $2::int AS b"),
            describe(b'S', ""),
            sync(),
        ])
        .await;
        assert!(b.replies().await.errors.is_empty(), "{kind}");
        for round in 0..3 {
            let asked = format!("A-{round}");
            a.send(&[bind("", &[&asked]), execute(), sync()]).await;
            let answer = a.replies().await;
            assert_eq!(answer.rows, vec![asked.clone()], "{kind}: {answer:?}");
            let (x, y) = (round.to_string(), (round + 10).to_string());
            b.send(&[bind("", &[&x, &y]), execute(), sync()]).await;
            let answer = b.replies().await;
            assert_eq!(answer.rows, vec![format!("{x},{y}")], "{kind}: {answer:?}");
        }
        assert!(
            bed.violations().is_empty(),
            "{kind}: {:?}",
            bed.violations()
        );
    }
}

/// A client that never parsed an unnamed statement gets PostgreSQL's own error for it,
/// never another client's statement.
#[tokio::test]
async fn binding_an_unnamed_statement_never_parsed_fails_as_in_postgres() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        a.send(&[parse("", "SELECT $1::text"), sync()]).await;
        a.replies().await;
        let mut b = bed.client(&[]).await;
        b.send(&[bind("", &["B"]), execute(), sync()]).await;
        let answer = b.replies().await;
        assert!(
            answer.rows.is_empty(),
            "{kind}: ran another client's statement: {answer:?}"
        );
        assert_eq!(answer.error_code(), Some("26000"), "{kind}: {answer:?}");
    }
}

/// A client that leaves after Flush, its batch without Sync, must not hand the next
/// client a server connection in the middle of that batch.
#[tokio::test]
async fn a_client_leaving_mid_batch_never_poisons_the_next() {
    for (shards, kind) in KINDS {
        for mode in ["transaction", "session"] {
            let bed = Bed::start(shards, mode, 1).await;
            let mut a = bed.client(&[]).await;
            a.send(&[
                parse("", "BEGIN"),
                bind("", &[]),
                execute(),
                parse("", "SELECT $1::text"),
                bind("", &["A"]),
                execute(),
                flush(),
            ])
            .await;
            // The replies up to the flush: PostgreSQL sends them without a ReadyForQuery.
            let mut seen = 0;
            while seen < 2 {
                if a.read().await.tag() == b'C' {
                    seen += 1;
                }
            }
            a.drop_connection();
            let mut b = bed.client(&[]).await;
            let answer = b.query("SELECT 'B'").await;
            assert_eq!(
                answer.rows,
                vec!["SELECT 'B'".to_string()],
                "{kind}, {mode}"
            );
            assert_eq!(
                answer.status, 'I',
                "{kind}, {mode}: inherited a transaction"
            );
            assert!(
                bed.violations().is_empty(),
                "{kind}, {mode}: {:?}",
                bed.violations()
            );
        }
    }
}

/// DEALLOCATE of a client's statement is the client's business: answered by the proxy
/// under the client's name, never sent to a server under that name.
#[tokio::test]
async fn deallocate_of_a_clients_statement_is_answered_under_its_name() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        a.send(&[parse("s1", "SELECT $1::text"), sync()]).await;
        assert!(a.replies().await.errors.is_empty(), "{kind}");
        a.send(&[bind("s1", &["x"]), execute(), sync()]).await;
        assert_eq!(a.replies().await.rows, vec!["x".to_string()], "{kind}");
        let answer = a.query("DEALLOCATE s1").await;
        assert_eq!(
            answer.tags,
            vec!["DEALLOCATE".to_string()],
            "{kind}: {answer:?}"
        );
        assert!(
            !bed.ran().iter().any(|sql| sql.contains("s1")),
            "{kind}: a server saw the client's name: {:?}",
            bed.ran()
        );
        a.send(&[bind("s1", &["y"]), execute(), sync()]).await;
        let answer = a.replies().await;
        assert_eq!(answer.error_code(), Some("26000"), "{kind}: {answer:?}");
        let again = a.query("DEALLOCATE s1").await;
        assert_eq!(again.error_code(), Some("26000"), "{kind}: {again:?}");
    }
}

/// The proxy's own statement names are out of every client's reach.
#[tokio::test]
async fn clients_cannot_name_the_proxys_statements() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        a.send(&[parse("mine", "SELECT $1::text"), sync()]).await;
        a.replies().await;
        a.send(&[bind("mine", &["a"]), execute(), sync()]).await;
        a.replies().await;
        let mut b = bed.client(&[]).await;
        for name in ["pgshard_s1", "pgshard_s0", "pgshard_1"] {
            b.send(&[bind(name, &["b"]), execute(), sync()]).await;
            let answer = b.replies().await;
            assert!(answer.rows.is_empty(), "{kind}: ran {name}: {answer:?}");
            assert!(!answer.errors.is_empty(), "{kind}: {name}: {answer:?}");
        }
        let answer = b.query("DEALLOCATE pgshard_s1").await;
        assert!(!answer.errors.is_empty(), "{kind}: {answer:?}");
        a.send(&[bind("mine", &["still"]), execute(), sync()]).await;
        assert_eq!(a.replies().await.rows, vec!["still".to_string()], "{kind}");
    }
}

/// Changing the role: in transaction pooling a one-shard client keeps its server
/// connection for good (so no other client runs as that role), and a sharded database
/// refuses it; either way no other client's statement runs after the SET ROLE on the
/// same server connection.
#[tokio::test]
async fn a_role_change_never_reaches_another_client() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        let answer = a.query("SET SESSION ROLE other").await;
        if shards == 1 {
            assert_eq!(answer.tags, vec!["SET".to_string()], "{kind}: {answer:?}");
            let mut b = bed.client_or_refused().await;
            if let Some(b) = b.as_mut() {
                // Waits for the pinned connection until the checkout times out.
                let answer = b.query("SELECT current_user").await;
                assert!(!answer.errors.is_empty(), "{kind}: {answer:?}");
            }
        } else {
            assert_eq!(answer.error_code(), Some("0A000"), "{kind}: {answer:?}");
            let mut b = bed.client(&[]).await;
            let answer = b.query("SELECT current_user").await;
            assert!(answer.errors.is_empty(), "{kind}: {answer:?}");
        }
        for server in &bed.servers {
            let ran = server.ran();
            if let Some(at) = ran
                .iter()
                .position(|(_, sql)| sql == "SET SESSION ROLE other")
            {
                let connection = ran[at].0;
                assert!(
                    !ran[at + 1..]
                        .iter()
                        .any(|(c, sql)| *c == connection && sql == "SELECT current_user"),
                    "{kind}: another client ran on the connection set to the role: {ran:?}"
                );
            }
        }
    }
}

impl Bed {
    /// A second client while the only server connection is pinned: its login may or may
    /// not need a server (one-shard greeting does), so it may be refused at login.
    async fn client_or_refused(&self) -> Option<TestClient> {
        match tokio::time::timeout(std::time::Duration::from_secs(5), try_client(&self.proxy)).await
        {
            Ok(client) => client,
            Err(_) => panic!("login neither served nor refused"),
        }
    }
}

/// Logs in, or `None` when the login is refused because no server connection is free.
async fn try_client(proxy: &ProxyHandle) -> Option<TestClient> {
    if login_outcome(proxy.addr).await {
        Some(TestClient::connect(proxy, &[]).await)
    } else {
        None
    }
}

/// Whether a login through `addr` succeeds now.
async fn login_outcome(addr: std::net::SocketAddr) -> bool {
    use crate::net::messages;
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut body = 196608i32.to_be_bytes().to_vec();
    for part in ["user", "app", "database", "app"] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    if tokio::io::AsyncWriteExt::write_all(&mut stream, &packet)
        .await
        .is_err()
    {
        return false;
    }
    let mut conn = crate::net::Connection::new(stream, 1 << 20);
    let mut password = crate::testing::PASSWORD.as_bytes().to_vec();
    password.push(0);
    if conn.read_frame().await.is_err() || conn.send(&messages::password(&password)).await.is_err()
    {
        return false;
    }
    loop {
        match conn.read_frame().await {
            Ok(frame) if frame.tag() == b'Z' => return true,
            Ok(frame) if frame.tag() == b'E' => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// A client's startup settings and SETs are replayed for it alone: the next client on the
/// same server connection runs with its own.
#[tokio::test]
async fn settings_are_replayed_for_each_client_alone() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[("application_name", "client-a")]).await;
        let mut b = bed.client(&[("application_name", "client-b")]).await;
        assert!(a.query("SET SCHEMA 's1'").await.errors.is_empty(), "{kind}");
        a.query("SELECT 'a'").await;
        b.query("SELECT 'b'").await;
        a.query("SELECT 'a again'").await;
        for server in &bed.servers {
            let ran: Vec<String> = server.ran().into_iter().map(|(_, sql)| sql).collect();
            // What each SELECT ran under: the statements since the last RESET ALL.
            for (at, sql) in ran.iter().enumerate() {
                let Some(client) = sql.strip_prefix("SELECT '").map(|s| &s[..1]) else {
                    continue;
                };
                let since = ran[..at]
                    .iter()
                    .rposition(|s| s == "RESET ALL")
                    .map_or(0, |reset| reset);
                let context = ran[since..at].join("; ");
                let own = format!("client-{client}");
                let other = if client == "a" {
                    "client-b"
                } else {
                    "client-a"
                };
                assert!(
                    !context.contains(other),
                    "{kind}: {sql} ran with the other client's settings: {context}"
                );
                if since > 0 {
                    assert!(
                        context.contains(&own),
                        "{kind}: {sql} without its own: {context}"
                    );
                }
                if client == "b" {
                    assert!(
                        !context.contains("s1"),
                        "{kind}: {sql} got a's search_path: {context}"
                    );
                }
            }
        }
    }
}

/// A Parse without its string terminator is answered 08P01 by the proxy, in
/// PostgreSQL's words, and never reaches a server: neither forwarded as it is nor taken
/// for a lost server connection.
#[tokio::test]
async fn a_parse_without_its_terminator_is_refused_by_the_proxy() {
    for (shards, kind) in KINDS {
        for mode in ["transaction", "session"] {
            let bed = Bed::start(shards, mode, 1).await;
            let mut a = bed.client(&[]).await;
            assert_eq!(a.query("BEGIN").await.status, 'T', "{kind}, {mode}");
            let unterminated = crate::net::Frame::new(b'P', b"\0SELECT 'never'");
            a.send(&[unterminated, sync()]).await;
            let frame = a.read().await;
            assert_eq!(frame.tag(), b'E', "{kind}, {mode}");
            let (code, message) = crate::net::messages::error_fields(&frame);
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("08P01", "invalid string in message"),
                "{kind}, {mode}"
            );
            assert!(a.closed().await, "{kind}, {mode}: still open");
            assert!(
                !bed.ran().iter().any(|sql| sql.contains("never")),
                "{kind}, {mode}: {:?}",
                bed.ran()
            );
            let mut b = bed.client(&[]).await;
            let answer = b.query("SELECT 'B'").await;
            assert_eq!(
                answer.rows,
                vec!["SELECT 'B'".to_string()],
                "{kind}, {mode}"
            );
            assert_eq!(answer.status, 'I', "{kind}, {mode}");
            assert!(
                bed.violations().is_empty(),
                "{kind}, {mode}: {:?}",
                bed.violations()
            );
        }
    }
}

/// Large messages of all clients share `max_message_memory`: while a stalled client
/// holds most of it, another's large message waits, then is refused with 53200 (small
/// ones pass meanwhile); the room comes back once the stalled message is served. On one
/// shard a large query is streamed to its server instead, never held: neither waits.
#[tokio::test]
async fn large_messages_share_one_memory_budget() {
    for (shards, kind) in KINDS {
        let bed = Bed::configured(
            shards,
            "transaction",
            2,
            echo(),
            "max_message_size = \"2MB\"\nmax_message_memory = \"2MB\"\nmessage_memory_wait = \"300ms\"",
        )
        .await;
        let big = crate::net::messages::query(&format!(
            "INSERT INTO items (id, name) VALUES (1, '{}')",
            "x".repeat(1_500_000)
        ));
        let bytes = big.as_bytes();
        let mut stalled = bed.client(&[]).await;
        stalled.send_bytes(&bytes[..bytes.len() / 2]).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;

        let mut other = bed.client(&[]).await;
        assert!(other.query("SELECT 1").await.errors.is_empty(), "{kind}");
        other.send(std::slice::from_ref(&big)).await;
        if shards == 1 {
            let served = other.replies().await;
            assert_eq!(served.tags, ["INSERT 0 1"], "{kind}: {:?}", served.errors);
            stalled.send_bytes(&bytes[bytes.len() / 2..]).await;
            let served = stalled.replies().await;
            assert_eq!(served.tags, ["INSERT 0 1"], "{kind}: {:?}", served.errors);
            assert!(
                bed.violations().is_empty(),
                "{kind}: {:?}",
                bed.violations()
            );
            continue;
        }
        let (code, message) = crate::net::messages::error_fields(&other.read().await);
        assert_eq!(code, "53200", "{kind}: {message}");
        assert!(message.contains("max_message_memory"), "{kind}: {message}");
        assert!(other.closed().await, "{kind}: still open");

        stalled.send_bytes(&bytes[bytes.len() / 2..]).await;
        let served = stalled.replies().await;
        assert_eq!(served.tags, ["INSERT 0 1"], "{kind}: {:?}", served.errors);
        let mut third = bed.client(&[]).await;
        third.send(std::slice::from_ref(&big)).await;
        let served = third.replies().await;
        assert_eq!(served.tags, ["INSERT 0 1"], "{kind}: {:?}", served.errors);
        assert!(
            bed.violations().is_empty(),
            "{kind}: {:?}",
            bed.violations()
        );
    }
}

/// A cancel for a statement still waiting for a server connection is not lost: the
/// statement never runs and its client gets 57014, as if the server had cancelled it;
/// the next statement runs normally.
#[tokio::test]
async fn a_cancel_before_the_statement_reaches_a_server_cancels_it() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 2).await;
        // Two clients hold both server connections in their transactions.
        let mut holder = bed.client(&[]).await;
        let mut other_holder = bed.client(&[]).await;
        let mut waiter = bed.client(&[]).await;
        for h in [&mut holder, &mut other_holder] {
            assert_eq!(h.query("BEGIN").await.status, 'T', "{kind}");
            // On every shard, for the two-shard database.
            assert!(
                h.query("SELECT id FROM items").await.errors.is_empty(),
                "{kind}"
            );
        }
        waiter
            .send(&[crate::net::messages::query("SELECT 'never'")])
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waiter.cancel(&bed.proxy).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(holder.query("COMMIT").await.status, 'I', "{kind}");
        let cancelled = waiter.replies().await;
        assert_eq!(other_holder.query("COMMIT").await.status, 'I', "{kind}");
        assert_eq!(
            cancelled.error_code(),
            Some("57014"),
            "{kind}: {cancelled:?}"
        );
        assert_eq!(cancelled.status, 'I', "{kind}");
        assert!(
            !bed.ran().iter().any(|sql| sql.contains("never")),
            "{kind}: {:?}",
            bed.ran()
        );
        let next = waiter.query("SELECT 'next'").await;
        assert_eq!(next.rows, ["SELECT 'next'"], "{kind}: {:?}", next.errors);
        assert!(
            bed.violations().is_empty(),
            "{kind}: {:?}",
            bed.violations()
        );
    }
}

/// COMMIT AND CHAIN on a sharded database starts the next transaction at once, with the
/// same BEGIN, as PostgreSQL does: the client stays in a transaction block and what it
/// runs next is inside it, not committed statement by statement.
#[tokio::test]
async fn commit_and_chain_keeps_the_client_in_a_transaction() {
    let bed = Bed::start(2, "transaction", 2).await;
    let mut client = bed.client(&[]).await;
    assert_eq!(
        client
            .query("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .status,
        'T'
    );
    assert!(client.query("SELECT id FROM items").await.errors.is_empty());
    let chained = client.query("COMMIT AND CHAIN").await;
    assert_eq!(chained.tags, ["COMMIT"], "{:?}", chained.errors);
    assert_eq!(chained.status, 'T');
    let next = client.query("SELECT id FROM items WHERE id = 1").await;
    assert_eq!(next.status, 'T', "{:?}", next.errors);
    let rolled = client.query("ROLLBACK AND NO CHAIN").await;
    assert_eq!(rolled.status, 'I', "{:?}", rolled.errors);
    let begins = bed
        .ran()
        .iter()
        .filter(|sql| sql.as_str() == "BEGIN ISOLATION LEVEL REPEATABLE READ")
        .count();
    // Two shards at first, then the one shard of id 1 in the chained transaction.
    assert_eq!(begins, 3, "{:?}", bed.ran());
    assert!(bed.violations().is_empty(), "{:?}", bed.violations());
}

/// An idle client is told the proxy is shutting down, as PostgreSQL tells it.
#[tokio::test]
async fn an_idle_client_hears_the_shutdown() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 2).await;
        let mut a = bed.client(&[]).await;
        a.query("SELECT 1").await;
        let Bed { proxy, servers } = bed;
        let stopping = tokio::spawn(proxy.shutdown());
        let frame = a.read().await;
        assert_eq!(frame.tag(), b'E', "{kind}");
        let (code, _) = crate::net::messages::error_fields(&frame);
        assert_eq!(code, "57P01", "{kind}");
        let _ = stopping.await;
        drop(servers);
    }
}

/// A shutdown waits for a batch the client has begun: its Execute ran and the client,
/// waiting for the batch's ReadyForQuery, gets it before the shutdown notice.
#[tokio::test]
async fn a_shutdown_lets_a_begun_batch_finish() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 2).await;
        let mut a = bed.client(&[]).await;
        a.send(&[
            parse("", "SELECT 'batch'"),
            bind("", &[]),
            execute(),
            flush(),
        ])
        .await;
        let mut seen = Vec::new();
        while seen.last() != Some(&b'C') {
            seen.push(a.read().await.tag());
        }
        let Bed { proxy, servers } = bed;
        let stopping = tokio::spawn(proxy.shutdown());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        a.send(&[sync()]).await;
        let frame = a.read().await;
        assert_eq!(frame.tag(), b'Z', "{kind}: {seen:?}");
        let notice = a.read().await;
        let (code, _) = crate::net::messages::error_fields(&notice);
        assert_eq!(code, "57P01", "{kind}");
        let _ = stopping.await;
        drop(servers);
    }
}

/// A client still in its transaction when `shutdown_timeout` is over is told 57P01, as
/// PostgreSQL tells it, before its connection closes, rather than cut off (or, with the
/// proxy in a test process, left connected); its server connection is not reused.
#[tokio::test]
async fn a_transaction_still_open_at_the_shutdown_deadline_hears_57p01() {
    for (shards, kind) in KINDS {
        for mode in ["transaction", "session"] {
            let bed =
                Bed::configured(shards, mode, 2, echo(), "shutdown_timeout = \"300ms\"").await;
            let mut a = bed.client(&[]).await;
            assert_eq!(a.query("BEGIN").await.status, 'T', "{kind}, {mode}");
            assert!(a
                .query("SELECT 1 FROM items WHERE id = 1")
                .await
                .errors
                .is_empty());
            let Bed { proxy, servers } = bed;
            let started = std::time::Instant::now();
            let stopping = tokio::spawn(proxy.shutdown());
            let frame = a.read().await;
            assert_eq!(frame.tag(), b'E', "{kind}, {mode}");
            let (code, message) = crate::net::messages::error_fields(&frame);
            assert_eq!(
                (code.as_str(), message.as_str()),
                (
                    "57P01",
                    "terminating connection due to administrator command"
                ),
                "{kind}, {mode}"
            );
            assert!(
                started.elapsed() >= std::time::Duration::from_millis(250),
                "{kind}, {mode}: told before the deadline"
            );
            assert!(a.closed().await, "{kind}, {mode}: still open");
            assert!(stopping.await.is_ok());
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{kind}, {mode}: the shutdown took {:?}",
                started.elapsed()
            );
            drop(servers);
        }
    }
}

/// Portals live as long as PostgreSQL keeps them: to the end of the transaction, the
/// unnamed one too, and a named portal cannot be bound twice.
#[tokio::test]
async fn portals_end_with_their_transaction_as_in_postgres() {
    let named = |portal: &str| {
        let mut body = portal.as_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        crate::net::Frame::new(b'B', &body)
    };
    let execute_named = |portal: &str| {
        let mut body = portal.as_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0]);
        crate::net::Frame::new(b'E', &body)
    };
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "session", 2).await;
        let mut a = bed.client(&[]).await;
        a.send(&[parse("", "SELECT 'x'"), bind("", &[]), execute(), sync()])
            .await;
        assert!(a.replies().await.errors.is_empty(), "{kind}");
        // The Sync ended the implicit transaction and its unnamed portal.
        a.send(&[execute(), sync()]).await;
        let gone = a.replies().await;
        assert_eq!(gone.error_code(), Some("34000"), "{kind}: {gone:?}");
        // In a transaction a named portal lasts across Syncs, and is bound once.
        assert!(a.query("BEGIN").await.errors.is_empty(), "{kind}");
        a.send(&[parse("", "SELECT 'y'"), named("p"), sync()]).await;
        assert!(a.replies().await.errors.is_empty(), "{kind}");
        a.send(&[execute_named("p"), sync()]).await;
        let kept = a.replies().await;
        assert_eq!(
            kept.rows,
            vec!["SELECT 'y'".to_string()],
            "{kind}: {kept:?}"
        );
        a.send(&[named("p"), sync()]).await;
        let twice = a.replies().await;
        assert_eq!(twice.error_code(), Some("42P03"), "{kind}: {twice:?}");
        assert!(a.query("ROLLBACK").await.errors.is_empty(), "{kind}");
        a.send(&[execute_named("p"), sync()]).await;
        let ended = a.replies().await;
        assert_eq!(ended.error_code(), Some("34000"), "{kind}: {ended:?}");
    }
}

/// A server error in a script, to check it reaches the client unchanged.
#[tokio::test]
async fn a_servers_error_reaches_the_client_as_it_was() {
    let script: crate::testing::scripted_server::Script = Arc::new(|statement: &Statement<'_>| {
        if statement.sql.contains("boom") {
            Reply::Error("22012".to_string(), "division by zero".to_string())
        } else {
            echo_reply(statement)
        }
    });
    for (shards, kind) in KINDS {
        let bed = Bed::with_script(shards, "transaction", 1, script.clone()).await;
        let mut a = bed.client(&[]).await;
        let answer = a.query("SELECT boom").await;
        assert_eq!(answer.error_code(), Some("22012"), "{kind}: {answer:?}");
        assert_eq!(answer.status, 'I', "{kind}");
        let answer = a.query("SELECT 'after'").await;
        assert!(answer.errors.is_empty(), "{kind}: {answer:?}");
    }
}

/// `SET`/`SHOW pgshard.*` are answered by the proxy, the same way on both kinds, and no
/// server sees them.
#[tokio::test]
async fn proxy_settings_are_answered_alike_by_both_kinds() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        let set = a.query("SET pgshard.role = replica").await;
        assert_eq!(set.tags, vec!["SET".to_string()], "{kind}: {set:?}");
        let shown = a.query("SHOW pgshard.role").await;
        assert_eq!(shown.rows, vec!["replica".to_string()], "{kind}: {shown:?}");
        let last = shards - 1;
        let set = a.query(&format!("SET pgshard.shard = {last}")).await;
        assert!(set.errors.is_empty(), "{kind}: {set:?}");
        let shown = a.query("SHOW pgshard.shard").await;
        assert_eq!(shown.rows, vec![last.to_string()], "{kind}: {shown:?}");
        let wrong = a.query(&format!("SET pgshard.shard = {shards}")).await;
        assert_eq!(wrong.error_code(), Some("22023"), "{kind}: {wrong:?}");
        assert_eq!(wrong.status, 'I', "{kind}");
        assert!(
            !bed.ran().iter().any(|sql| sql.contains("pgshard.")),
            "{kind}: a server saw a pgshard setting: {:?}",
            bed.ran()
        );
    }
}

/// Answers `SELECT … FROM items` with three rows, else echoes.
fn three_items() -> crate::testing::scripted_server::Script {
    Arc::new(|statement: &Statement<'_>| {
        if statement.sql.contains("FROM items") {
            Reply::Rows {
                columns: vec!["id".to_string()],
                rows: (1..=3).map(|i| vec![i.to_string()]).collect(),
                tag: "SELECT 3".to_string(),
            }
        } else {
            echo_reply(statement)
        }
    })
}

/// Execute with a row limit (pgjdbc's executeUpdate and fetch size, asyncpg's fetchrow):
/// the first rows, then PortalSuspended, as PostgreSQL sends them; a statement without
/// rows completes whatever the limit; the next Executes resume the portal, on one shard
/// and across shards alike.
#[tokio::test]
async fn an_execute_with_a_row_limit_suspends_as_postgres_does() {
    for (shards, kind) in KINDS {
        let bed = Bed::with_script(shards, "transaction", 2, three_items()).await;
        let mut a = bed.client(&[]).await;
        let limited = |n: i32| {
            let mut body = vec![0u8];
            body.extend_from_slice(&n.to_be_bytes());
            crate::net::Frame::new(b'E', &body)
        };
        // A setting, as pgjdbc sends it at connect with a limit of 1.
        a.send(&[
            parse("", "SET extra_float_digits = 3"),
            bind("", &[]),
            limited(1),
            sync(),
        ])
        .await;
        let set = a.replies().await;
        assert_eq!(set.tags, vec!["SET".to_string()], "{kind}: {set:?}");
        // Fewer rows than the limit: all of them, completed.
        a.send(&[
            parse("", "SELECT id FROM items"),
            bind("", &[]),
            limited(10),
            sync(),
        ])
        .await;
        let all = a.replies().await;
        assert!(all.errors.is_empty(), "{kind}: {all:?}");
        assert_eq!(all.rows.len(), 3 * shards, "{kind}: {all:?}");
        assert!(!all.tags_seen.contains(&'s'), "{kind}: {all:?}");
        // More rows than the limit: that many, then suspended.
        a.send(&[
            parse("", "SELECT id FROM items"),
            bind("", &[]),
            limited(2),
            sync(),
        ])
        .await;
        let part = a.replies().await;
        assert_eq!(part.rows.len(), 2, "{kind}: {part:?}");
        assert!(part.tags.is_empty(), "{kind}: {part:?}");
        assert_eq!(part.tags_seen.last(), Some(&'Z'), "{kind}");
        assert!(part.tags_seen.contains(&'s'), "{kind}: {part:?}");
        // Resumed inside a transaction, as a fetch size does.
        a.query("BEGIN").await;
        a.send(&[
            parse("", "SELECT id FROM items"),
            bind("", &[]),
            limited(2),
            flush(),
        ])
        .await;
        let mut seen = Vec::new();
        while seen.last() != Some(&'s') {
            seen.push(a.read().await.tag() as char);
        }
        // The rest, two rows at a time: every shard's rows once, then the completion.
        let mut parts = Vec::new();
        loop {
            a.send(&[limited(2), sync()]).await;
            let part = a.replies().await;
            assert!(part.errors.is_empty(), "{kind}: {part:?}");
            parts.push(part.rows.len());
            if !part.tags.is_empty() {
                assert_eq!(
                    part.tags,
                    vec![format!("SELECT {}", part.rows.len())],
                    "{kind}: {part:?}"
                );
                break;
            }
            assert!(part.tags_seen.contains(&'s'), "{kind}: {part:?}");
        }
        let expected = if shards == 1 { vec![1] } else { vec![2, 2, 0] };
        assert_eq!(parts, expected, "{kind}: rows per resumed Execute");
        // Run to its end, the portal gives no more rows.
        a.send(&[limited(2), sync()]).await;
        let done = a.replies().await;
        assert!(
            done.rows.is_empty() && done.errors.is_empty(),
            "{kind}: {done:?}"
        );
        a.query("ROLLBACK").await;
        let after = a.query("SELECT 'after'").await;
        assert!(after.errors.is_empty(), "{kind}: {after:?}");
    }
}

/// Several commands in one Parse get PostgreSQL's own error on both kinds.
#[tokio::test]
async fn several_commands_in_one_parse_fail_as_in_postgres() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 1).await;
        let mut a = bed.client(&[]).await;
        a.send(&[parse("", "SELECT 1; SELECT 2"), sync()]).await;
        let answer = a.replies().await;
        assert_eq!(
            answer.errors,
            vec![(
                "42601".to_string(),
                "cannot insert multiple commands into a prepared statement".to_string()
            )],
            "{kind}"
        );
        a.send(&[parse("", "SELECT 1; -- one command"), sync()])
            .await;
        let answer = a.replies().await;
        assert!(answer.errors.is_empty(), "{kind}: {answer:?}");
    }
}

/// A literal `set_config(name, value, false)` (asyncpg's introspection runs one) lasts for
/// the session: a sharded database replays it on every shard the client uses next, a
/// one-shard database keeps the client on its server connection. Replayed with set_config,
/// not SET, which would read 'a, b' as one schema.
#[tokio::test]
async fn a_literal_set_config_lasts_for_the_session() {
    for (shards, kind) in KINDS {
        let bed = Bed::start(shards, "transaction", 2).await;
        let mut a = bed.client(&[]).await;
        let set = a
            .query("SELECT set_config('search_path', 'a, b', false)")
            .await;
        assert!(set.errors.is_empty(), "{kind}: {set:?}");
        for i in 0..4 {
            let answer = a.query(&format!("SELECT 'a{i}'")).await;
            assert!(answer.errors.is_empty(), "{kind}: {answer:?}");
        }
        for server in &bed.servers {
            let ran = server.ran();
            for (at, (connection, sql)) in ran.iter().enumerate() {
                if !sql.starts_with("SELECT 'a") {
                    continue;
                }
                let before: Vec<&str> = ran[..at]
                    .iter()
                    .filter(|(c, _)| c == connection)
                    .map(|(_, sql)| sql.as_str())
                    .collect();
                let since = before.iter().rposition(|s| *s == "RESET ALL").unwrap_or(0);
                assert!(
                    before[since..]
                        .iter()
                        .any(|s| s.contains("set_config('search_path', 'a, b', false)")),
                    "{kind}: {sql} ran without the client's set_config: {:?}",
                    &before[since..]
                );
            }
        }
    }
}

/// A server that sends a ReadyForQuery nobody asked for breaks the protocol: its
/// connection is closed, never reused, and the client whose transaction was on it is told
/// 08P01. On one shard the session's count of batches underflowed instead (the client
/// was left waiting, or pinned for good); on two, the next statement was answered with
/// the stray message and every later one with its predecessor's replies.
#[tokio::test]
async fn a_stray_ready_for_query_breaks_only_that_server_connection() {
    let script: crate::testing::scripted_server::Script = Arc::new(|statement: &Statement<'_>| {
        if statement.sql.contains("stray") {
            Reply::CommandThenStrayReady("SELECT 0".to_string())
        } else {
            echo_reply(statement)
        }
    });
    for (shards, kind) in KINDS {
        for mode in ["transaction", "session"] {
            let bed = Bed::with_script(shards, mode, 1, script.clone()).await;
            let mut a = bed.client(&[]).await;
            assert_eq!(a.query("BEGIN").await.status, 'T', "{kind}, {mode}");
            let answer = a.query("SELECT stray FROM items WHERE id = 1").await;
            assert_eq!(answer.tags, vec!["SELECT 0".to_string()], "{kind}, {mode}");
            // One shard: told at once. Two: told when the next statement would run.
            a.send(&[crate::net::messages::query(
                "SELECT 'next' FROM items WHERE id = 1",
            )])
            .await;
            let frame = a.read().await;
            assert_eq!(frame.tag(), b'E', "{kind}, {mode}");
            let (code, message) = crate::net::messages::error_fields(&frame);
            assert_eq!(code, "08P01", "{kind}, {mode}: {message}");
            assert!(a.closed().await, "{kind}, {mode}: still open");

            let mut b = bed.client(&[]).await;
            let answer = b.query("SELECT 'B' FROM items WHERE id = 1").await;
            assert_eq!(
                answer.rows,
                vec!["SELECT 'B' FROM items WHERE id = 1".to_string()],
                "{kind}, {mode}"
            );
            assert_eq!(answer.status, 'I', "{kind}, {mode}");
            for server in &bed.servers {
                let ran = server.ran();
                let on = |sql: &str| ran.iter().find(|(_, s)| s.contains(sql)).map(|(c, _)| *c);
                assert!(
                    on("stray").is_none() || on("stray") != on("'B'"),
                    "{kind}, {mode}: the broken connection was reused: {ran:?}"
                );
                assert!(
                    on("'next'").is_none(),
                    "{kind}, {mode}: ran on a broken connection: {ran:?}"
                );
            }
        }
    }

    // Outside a transaction (one shard) the connection goes back to the pool before the
    // stray message is read: the pool's check finds it there and does not reuse it.
    let bed = Bed::with_script(1, "transaction", 1, script).await;
    let mut a = bed.client(&[]).await;
    assert!(a.query("SELECT stray").await.errors.is_empty());
    for round in 0..3 {
        let answer = a.query("SELECT 'again'").await;
        assert_eq!(answer.rows, vec!["SELECT 'again'".to_string()], "{round}");
        assert_eq!(answer.status, 'I');
    }
}
