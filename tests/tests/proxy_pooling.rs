//! Transaction pooling: many clients on few server connections, and what each client leaves
//! on a server session (settings, temporary tables, locks, LISTEN) never reaches another.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_config::{AuthMethod, PoolMode};
use pgshard_tests::wire::{self, RawConnection};
use pgshard_tests::{sqlstate, wait_for, Cluster, Node, ProxyOptions, TestProxy, User};
use tokio_postgres::{Client, NoTls};

/// Server backends serving the load clients: the proxy's server connections, which log in
/// as `pgshard` and take each client's `application_name` (`load`) when they serve it. The
/// proxy's health checks and direct test connections go by other names.
const LOAD_BACKENDS: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE usename = 'app' AND backend_type = 'client backend' \
     AND application_name IN ('pgshard', 'load')";

/// A primary without replicas, and a proxy in front of it.
async fn start(options: ProxyOptions) -> Result<(Cluster, TestProxy)> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(cluster.shard(0).primary(), options).await?;
    Ok((cluster, proxy))
}

fn primary(cluster: &Cluster) -> &Node {
    cluster.shard(0).primary()
}

/// A connection to the proxy with startup parameters of the test's choosing.
async fn connect_with(
    proxy: &TestProxy,
    configure: impl FnOnce(&mut tokio_postgres::Config),
) -> Result<Client> {
    connect_with_config(proxy.addr(), configure).await
}

/// A connection to `addr` as `app` with startup parameters of the test's choosing.
async fn connect_with_config(
    addr: std::net::SocketAddr,
    configure: impl FnOnce(&mut tokio_postgres::Config),
) -> Result<Client> {
    let user = User::app();
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(&user.name)
        .password(&user.password)
        .dbname(&user.database);
    configure(&mut config);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The first column of the one row `sql` returns, as text.
async fn text(client: &Client, sql: &str) -> Result<String> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}

async fn pid(client: &Client) -> Result<i32> {
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0))
}

/// Whether the client's session has a table `scratch` (its temporary one).
async fn sees_scratch(client: &Client) -> Result<bool> {
    Ok(client
        .query_one("SELECT to_regclass('scratch') IS NOT NULL", &[])
        .await?
        .get(0))
}

async fn show(client: &Client, setting: &str) -> Result<String> {
    let rows = client.simple_query(&format!("SHOW {setting}")).await?;
    rows.iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .with_context(|| format!("SHOW {setting} returned no row"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_share_ten_server_connections() -> Result<()> {
    const CLIENTS: i32 = 200;
    const ROUNDS: i32 = 3;
    let (cluster, proxy) = start(ProxyOptions {
        pool_size: 10,
        // The test is about pooling; cleartext keeps 200 logins cheap on a small machine.
        auth_method: AuthMethod::Cleartext,
        ..ProxyOptions::default()
    })
    .await?;
    let primary = primary(&cluster);
    primary
        .execute("CREATE TABLE load (client int, round int)")
        .await?;

    let monitor = primary.client(&User::postgres()).await?;
    let most = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (most, done) = (most.clone(), done.clone());
        async move {
            let mut samples = 0;
            while !done.load(Ordering::Acquire) {
                let now = count(&monitor, LOAD_BACKENDS).await?;
                most.fetch_max(now, Ordering::AcqRel);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(samples)
        }
    });

    let clients = (0..CLIENTS).map(|c| {
        let proxy = &proxy;
        async move {
            let mut client = connect_with(proxy, |c| {
                c.application_name("load");
            })
            .await?;
            let mine = client
                .prepare("SELECT count(*) FROM load WHERE client = $1")
                .await?;
            for round in 0..ROUNDS {
                let tx = client.transaction().await?;
                tx.execute("INSERT INTO load VALUES ($1, $2)", &[&c, &round])
                    .await?;
                let rows: i64 = tx.query_one(&mine, &[&c]).await?.get(0);
                ensure!(rows == i64::from(round + 1), "client {c}: {rows} rows");
                tx.commit().await?;
                client.batch_execute("SELECT 1; SELECT 2").await?;
            }
            anyhow::Ok(())
        }
    });
    let results = futures::future::join_all(clients).await;
    done.store(true, Ordering::Release);
    let samples = sampler.await??;

    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(
        primary.query_one_i64("SELECT count(*) FROM load").await?,
        i64::from(CLIENTS * ROUNDS)
    );
    let most = most.load(Ordering::Acquire);
    assert!(
        (2..=10).contains(&most),
        "at most {most} server connections at once in {samples} samples (pool of 10)"
    );
    Ok(())
}

async fn count(client: &Client, sql: &str) -> Result<i64> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_stay_with_the_client_that_made_them() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions {
        // One server connection: every client runs on the same server session.
        pool_size: 1,
        ..ProxyOptions::default()
    })
    .await?;
    let primary = primary(&cluster);
    primary
        .execute(
            "CREATE SCHEMA a_schema; \
             CREATE TABLE a_schema.marker (v text); INSERT INTO a_schema.marker VALUES ('a'); \
             CREATE TABLE public.marker (v text); INSERT INTO public.marker VALUES ('public')",
        )
        .await?;
    let direct = primary.client(&User::app()).await?;
    let default_path = show(&direct, "search_path").await?;
    let default_timeout = show(&direct, "statement_timeout").await?;
    direct
        .batch_execute("SET search_path TO a_schema, public")
        .await?;
    let a_path = show(&direct, "search_path").await?;
    assert_ne!(a_path, default_path);

    let a = connect_with(&proxy, |c| {
        c.application_name("client_a");
    })
    .await?;
    let b = connect_with(&proxy, |c| {
        c.application_name("client_b");
    })
    .await?;
    a.batch_execute(
        "SET search_path TO a_schema, public; SET statement_timeout = '1234ms'; \
         SET application_name = 'renamed_a'",
    )
    .await?;

    let check_b = || async {
        assert_eq!(show(&b, "search_path").await?, default_path);
        assert_eq!(show(&b, "statement_timeout").await?, default_timeout);
        assert_eq!(show(&b, "application_name").await?, "client_b");
        assert_eq!(text(&b, "SELECT v FROM marker").await?, "public");
        // The server itself runs B's session under B's startup application_name.
        let server_side = text(
            &b,
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .await?;
        assert_eq!(server_side, "client_b");
        anyhow::Ok(())
    };
    let check_a = |timeout: &'static str| {
        let (a, a_path) = (&a, &a_path);
        async move {
            assert_eq!(&show(a, "search_path").await?, a_path);
            assert_eq!(show(a, "statement_timeout").await?, timeout);
            assert_eq!(show(a, "application_name").await?, "renamed_a");
            assert_eq!(text(a, "SELECT v FROM marker").await?, "a");
            anyhow::Ok(())
        }
    };
    check_b().await.context("B after A's SETs")?;
    check_a("1234ms").await.context("A after B ran")?;
    check_b().await.context("B after A ran again")?;

    // SET LOCAL ends with its transaction; a SET in a rolled-back transaction is undone.
    a.batch_execute("BEGIN; SET LOCAL statement_timeout = '5s'")
        .await?;
    assert_eq!(show(&a, "statement_timeout").await?, "5s");
    a.batch_execute("COMMIT").await?;
    a.batch_execute("BEGIN; SET statement_timeout = '6s'; ROLLBACK")
        .await?;
    check_b().await.context("B after A's transactions")?;
    check_a("1234ms")
        .await
        .context("A after SET LOCAL and a rolled-back SET")?;

    // RESET ALL goes back to the session defaults.
    a.batch_execute("RESET ALL").await?;
    assert_eq!(show(&a, "search_path").await?, default_path);
    assert_eq!(show(&a, "statement_timeout").await?, default_timeout);
    check_b().await.context("B after A's RESET ALL")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_and_pipelined_sets_stay_with_their_client() -> Result<()> {
    let (_cluster, proxy) = start(ProxyOptions {
        pool_size: 1,
        ..ProxyOptions::default()
    })
    .await?;
    // Same startup parameters: only what each client SETs tells their sessions apart.
    let a = proxy.client(&User::app()).await?;
    let b = proxy.client(&User::app()).await?;
    let settings = [
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "work_mem",
    ];
    let mut defaults = Vec::new();
    for setting in settings {
        defaults.push(show(&b, setting).await?);
    }
    let check = |expected_a: [&'static str; 4], after: &'static str| {
        let (a, b, defaults) = (&a, &b, &defaults);
        async move {
            for ((setting, mine), default) in settings.iter().zip(expected_a).zip(defaults) {
                let seen_by_b = show(b, setting).await?;
                ensure!(
                    &seen_by_b == default,
                    "after {after}: B sees {setting} = {seen_by_b}, not its default {default}"
                );
                let mine = if mine.is_empty() {
                    default.as_str()
                } else {
                    mine
                };
                let seen_by_a = show(a, setting).await?;
                ensure!(
                    seen_by_a == mine,
                    "after {after}: A sees {setting} = {seen_by_a}, not {mine}"
                );
            }
            anyhow::Ok(())
        }
    };

    // tokio-postgres runs a parameterless execute() over the extended protocol.
    a.execute("SET statement_timeout = '777ms'", &[]).await?;
    check(["777ms", "", "", ""], "an extended-protocol SET").await?;

    // Pipelined: the SET's batch is still in flight when the first one ends.
    let (first, second) = futures::join!(
        a.batch_execute("SELECT 1"),
        a.batch_execute("SET lock_timeout = '888ms'")
    );
    first?;
    second?;
    check(["777ms", "888ms", "", ""], "a pipelined simple SET").await?;

    let (first, second) = futures::join!(
        a.query_one("SELECT 1", &[]),
        a.execute("SET idle_in_transaction_session_timeout = '999ms'", &[])
    );
    first?;
    second?;
    check(["777ms", "888ms", "999ms", ""], "a pipelined extended SET").await?;

    // A SET that fails is not recorded, and does not take the next one's place.
    let (bad, good) = futures::join!(
        a.batch_execute("SET statement_timeout = 'soon'"),
        a.batch_execute("SET work_mem = '9MB'")
    );
    assert_eq!(sqlstate(&bad.unwrap_err()), Some("22023"));
    good?;
    check(["777ms", "888ms", "999ms", "9MB"], "a failed SET").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_options_apply_as_on_a_direct_connection() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions {
        pool_size: 1,
        ..ProxyOptions::default()
    })
    .await?;
    let primary = primary(&cluster);
    primary.execute("CREATE SCHEMA opt_schema").await?;
    let options = "-c search_path=opt_schema,public -c statement_timeout=4321 \
                   --lock-timeout=2s";
    let settings = ["search_path", "statement_timeout", "lock_timeout"];
    let configure = |c: &mut tokio_postgres::Config| {
        c.options(options).application_name("with_options");
    };

    let direct = connect_with_config(primary.addr(), configure).await?;
    let plain = proxy.client(&User::app()).await?;
    let proxied = connect_with(&proxy, configure).await?;
    for setting in settings {
        let expected = show(&direct, setting).await?;
        assert_eq!(
            show(&proxied, setting).await?,
            expected,
            "{setting} through the proxy"
        );
        // The other client of the same server connection keeps the defaults.
        assert_ne!(
            show(&plain, setting).await?,
            expected,
            "{setting} leaked to another client"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_returns_to_the_clients_startup_settings_as_on_the_server() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = primary(&cluster);
    primary.execute("CREATE SCHEMA opt_schema").await?;
    let configure = |c: &mut tokio_postgres::Config| {
        c.options("-c search_path=opt_schema,public -c statement_timeout=4321")
            .application_name("mine");
    };
    let direct = connect_with_config(primary.addr(), configure).await?;
    let expected = reset_steps(&direct).await?;

    for pool_mode in [PoolMode::Transaction, PoolMode::Session] {
        let proxy = TestProxy::start(
            primary,
            ProxyOptions {
                pool_mode,
                pool_size: 2,
                ..ProxyOptions::default()
            },
        )
        .await?;
        let client = connect_with_config(proxy.addr(), configure).await?;
        assert_eq!(
            reset_steps(&client).await?,
            expected,
            "{pool_mode:?}: through the proxy (left) and directly (right)"
        );

        // The client is told the restored values, as PostgreSQL tells it.
        let mut told = Vec::new();
        for addr in [primary.addr(), proxy.addr()] {
            told.push(application_name_reported_by_reset(addr).await?);
        }
        assert_eq!(
            told[1], told[0],
            "{pool_mode:?}: ParameterStatus after RESET ALL"
        );
        proxy.shutdown().await;
    }
    Ok(())
}

/// Changes settings and resets them in every way there is; returns what the client sees
/// after each step.
async fn reset_steps(client: &Client) -> Result<Vec<Vec<String>>> {
    let steps = [
        "SET application_name = 'changed'; SET search_path = public; \
         SET statement_timeout = 5",
        "RESET ALL",
        "SET application_name = 'again'",
        "SET application_name TO DEFAULT",
        "SET statement_timeout = 7",
        "RESET statement_timeout",
        "SET search_path = public",
        "DISCARD ALL",
        "BEGIN; SET search_path = public; RESET ALL; COMMIT",
    ];
    let mut seen = Vec::new();
    for step in steps {
        client.batch_execute(step).await.context(step)?;
        let mut values = vec![step.to_string()];
        for setting in ["application_name", "search_path", "statement_timeout"] {
            values.push(show(client, setting).await?);
        }
        seen.push(values);
    }
    Ok(seen)
}

/// The application_name a server reports after RESET ALL, to a client that started with
/// application_name `mine` and then changed it.
async fn application_name_reported_by_reset(addr: std::net::SocketAddr) -> Result<Vec<String>> {
    let user = User::app();
    let mut conn = RawConnection::connect(addr).await?;
    conn.send_bytes(&wire::startup_packet(&[
        ("user", &user.name),
        ("database", &user.database),
        ("application_name", "mine"),
    ]))
    .await?;
    conn.authenticate(&user).await?;
    conn.read_until_ready().await?;
    conn.send_bytes(&wire::query("SET application_name = 'changed'"))
        .await?;
    conn.read_until_ready().await?;
    conn.send_bytes(&wire::query("RESET ALL")).await?;
    let replies = conn.read_until_ready().await?;
    let reported = replies
        .iter()
        .filter(|m| m.tag == b'S' && m.body.starts_with(b"application_name\0"))
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect::<Vec<_>>();
    // Only the last report counts: it is what the client is left believing.
    Ok(reported.last().into_iter().cloned().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_pins_the_client_and_never_reaches_another() -> Result<()> {
    let (cluster, proxy) = start(ProxyOptions {
        pool_size: 3,
        ..ProxyOptions::default()
    })
    .await?;
    let a = proxy.client(&User::app()).await?;
    let b = proxy.client(&User::app()).await?;
    a.batch_execute("CREATE TEMP TABLE scratch (v int); INSERT INTO scratch VALUES (0)")
        .await?;
    let a_pid = pid(&a).await?;
    for i in 1..=5 {
        a.batch_execute(&format!("BEGIN; INSERT INTO scratch VALUES ({i}); COMMIT"))
            .await?;
        let rows: i64 = a
            .query_one("SELECT count(*) FROM scratch", &[])
            .await?
            .get(0);
        assert_eq!(rows, i64::from(i) + 1);
        assert_eq!(pid(&a).await?, a_pid, "A moved off its server connection");
        assert!(!sees_scratch(&b).await?, "B sees A's temporary table");
        let error = b.query_one("SELECT * FROM scratch", &[]).await.unwrap_err();
        assert_eq!(sqlstate(&error), Some("42P01"));
    }

    // A session advisory lock stays with its owner; others cannot take it meanwhile.
    let c = proxy.client(&User::app()).await.context("client C")?;
    c.batch_execute("SELECT pg_advisory_lock(42)").await?;
    // Trying a session lock pins too (it might succeed), so D leaves afterwards.
    let d = proxy.client(&User::app()).await.context("client D")?;
    let taken: bool = d
        .query_one("SELECT pg_try_advisory_lock(42)", &[])
        .await?
        .get(0);
    assert!(!taken, "D took a lock C holds");
    drop(d);
    let released: bool = c
        .query_one("SELECT pg_advisory_unlock(42)", &[])
        .await?
        .get(0);
    assert!(released, "C's unlock ran on another session than its lock");
    drop(c);

    // LISTEN: notifications reach the listener on its pinned server connection.
    let (mut listener, _) = RawConnection::login(proxy.addr(), &User::app())
        .await
        .context("the listener")?;
    listener.send_bytes(&wire::query("LISTEN news")).await?;
    listener.read_until_ready().await?;
    b.batch_execute("NOTIFY news, 'hello'").await?;
    let notification = listener.expect_message().await?;
    assert_eq!(notification.kind(), 'A', "{notification:?}");
    assert!(
        notification.body.ends_with(b"news\0hello\0"),
        "{notification:?}"
    );
    drop(listener);

    // When A leaves, its server connection is reset before anyone else gets it.
    drop(a);
    let monitor = primary(&cluster).client(&User::postgres()).await?;
    wait_for(
        "A's server connection to be reset and idle",
        Duration::from_secs(10),
        || async {
            let state = monitor
                .query_opt(
                    "SELECT state FROM pg_stat_activity WHERE pid = $1",
                    &[&a_pid],
                )
                .await
                .ok()
                .flatten()
                .map(|row| row.get::<_, String>(0));
            Ok((state.as_deref() == Some("idle")).then_some(()))
        },
    )
    .await?;
    // Three clients in transactions hold all three server connections, A's former one too.
    let mut holders = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let holder = proxy
            .client(&User::app())
            .await
            .with_context(|| format!("holder {}", holders.len()))?;
        holder.batch_execute("BEGIN").await?;
        seen.insert(pid(&holder).await?);
        assert!(
            !sees_scratch(&holder).await?,
            "a temporary table outlived its client"
        );
        holders.push(holder);
    }
    assert!(
        seen.contains(&a_pid),
        "A's server connection was not reused ({seen:?}, A had {a_pid})"
    );
    Ok(())
}
