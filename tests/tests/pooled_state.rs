//! What a pooled client leaves on a server connection never reaches another client: its
//! unnamed statement, its statement names, its role and settings, a batch it abandoned.
//! Several clients run at once on few server connections, and every answer is checked
//! against what that client asked.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use pgshard_config::PoolMode;
use pgshard_proxy::ProxyHandle;
use pgshard_tests::wire::{self, BackendMessage, RawConnection};
use pgshard_tests::{run_tool, sqlstate, wait_for, Cluster, User};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Tables the sharded database keeps in full on every shard.
const REPLICATED: &str = r#"["ledger", "kept", "left_behind"]"#;

/// Starts a proxy with `pool_size` server connections per node: database `app` on shard 0
/// of `cluster` (its replicas too) and, when the cluster has several shards, database
/// `sharded` on all of them (the same server database). Waits until reads reach a replica
/// when there is one.
async fn proxy(
    cluster: &Cluster,
    mode: PoolMode,
    pool_size: u32,
    extra_users: &str,
) -> Result<ProxyHandle> {
    let shard = cluster.shard(0);
    let shard_toml = |s: &pgshard_tests::Shard| {
        format!(
            "[[databases.shards]]\nprimary = \"{}\"\nreplicas = [{}]\n",
            s.primary().proxy_addr(),
            s.replicas_toml()
        )
    };
    let routing = "[databases.routing]\nhealth_check_interval = \"100ms\"\n";
    let mut databases = format!(
        "[[databases]]\nname = \"app\"\n{routing}{}",
        shard_toml(shard)
    );
    if cluster.shards().len() > 1 {
        databases.push_str(&format!(
            "[[databases]]\nname = \"sharded\"\nserver_database = \"app\"\n\
             replicated_tables = {REPLICATED}\n{routing}"
        ));
        for s in cluster.shards() {
            databases.push_str(&shard_toml(s));
        }
    }
    let mode = match mode {
        PoolMode::Transaction => "transaction",
        PoolMode::Session => "session",
    };
    let toml = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
pool_mode = "{mode}"
pool_size = {pool_size}
connect_timeout = "2s"
checkout_timeout = "10s"
log_level = "warn"
[[users]]
name = "app"
password = "app"
{extra_users}
{databases}
"#
    );
    let config = pgshard_config::parse(&toml, "pooled_state.toml").map_err(|e| anyhow!("{e}"))?;
    let proxy = pgshard_proxy::start(config).await?;
    if !shard.replicas().is_empty() && mode == "transaction" {
        let client = connect(&proxy, "app", &[]).await?;
        wait_for(
            "reads to reach a replica",
            Duration::from_secs(30),
            || async {
                let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await;
                Ok(row.ok().and_then(|r| r.get::<_, bool>(0).then_some(())))
            },
        )
        .await?;
    }
    Ok(proxy)
}

/// The proxy's databases for `cluster`: the one-shard one, and the sharded one when the
/// cluster has several shards.
fn databases(cluster: &Cluster) -> Vec<&'static str> {
    if cluster.shards().len() > 1 {
        vec!["app", "sharded"]
    } else {
        vec!["app"]
    }
}

/// `app` logging in to database `database` of the proxy.
fn app_on(database: &str) -> User {
    User::new("app", "app", database)
}

/// Runs `sql` on every shard's primary, directly.
async fn on_every_primary(cluster: &Cluster, sql: &str) -> Result<()> {
    for shard in cluster.shards() {
        shard.primary().execute(sql).await?;
    }
    Ok(())
}

/// A client of the proxy as `app` on `database`, with `options` (`-c name=value`).
async fn connect(proxy: &ProxyHandle, database: &str, options: &[(&str, &str)]) -> Result<Client> {
    connect_as(proxy, &app_on(database), options).await
}

async fn connect_as(proxy: &ProxyHandle, user: &User, options: &[(&str, &str)]) -> Result<Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(proxy.addr.ip().to_string())
        .port(proxy.addr.port())
        .user(&user.name)
        .password(&user.password)
        .dbname(&user.database)
        .connect_timeout(Duration::from_secs(15));
    if !options.is_empty() {
        let options: Vec<String> = options
            .iter()
            .map(|(name, value)| format!("-c {name}={}", value.replace(' ', "\\ ")))
            .collect();
        config.options(options.join(" "));
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The first column of the first row of a simple query.
async fn value(client: &Client, sql: &str) -> Result<String> {
    client
        .simple_query(sql)
        .await?
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .with_context(|| format!("{sql}: no row"))
}

fn describe_statement(name: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    wire::message(b'D', &body)
}

fn flush() -> Vec<u8> {
    wire::message(b'H', &[])
}

/// Sends messages and reads up to ReadyForQuery.
async fn round_trip(conn: &mut RawConnection, messages: &[Vec<u8>]) -> Result<Vec<BackendMessage>> {
    conn.send_bytes(&messages.concat()).await?;
    Ok(conn.read_until_ready().await?)
}

fn error_of(replies: &[BackendMessage]) -> Option<String> {
    replies.iter().find(|m| m.tag == b'E').map(|e| {
        format!(
            "{} {}",
            e.sqlstate().unwrap_or_default(),
            e.field(b'M').unwrap_or_default()
        )
    })
}

fn rows(replies: &[BackendMessage]) -> Vec<Vec<Option<String>>> {
    replies
        .iter()
        .filter(|m| m.tag == b'D')
        .map(wire::data_row)
        .collect()
}

/// What Go's lib/pq, pgx without a statement cache and libpq's `PQprepare("")` do: the
/// unnamed statement is prepared and described in one round trip, bound and executed in
/// the next, so the two may get different server connections.
async fn lib_pq_style(
    conn: &mut RawConnection,
    sql: &str,
    param: &str,
) -> Result<Vec<BackendMessage>> {
    let prepared = round_trip(
        conn,
        &[wire::parse("", sql), describe_statement(""), wire::sync()],
    )
    .await?;
    if let Some(error) = error_of(&prepared) {
        return Err(anyhow!("Parse of {sql:?}: {error}"));
    }
    let ran = round_trip(
        conn,
        &[
            wire::bind("", &[Some(param)]),
            wire::execute(),
            wire::sync(),
        ],
    )
    .await?;
    if let Some(error) = error_of(&ran) {
        return Err(anyhow!("Bind/Execute of {sql:?} with {param:?}: {error}"));
    }
    Ok(ran)
}

/// Each pool mode with each database of the proxy.
fn modes_and_databases(cluster: &Cluster) -> Vec<(PoolMode, &'static str)> {
    [PoolMode::Transaction, PoolMode::Session]
        .into_iter()
        .flat_map(|mode| databases(cluster).into_iter().map(move |db| (mode, db)))
        .collect()
}

/// The primaries that hold a replicated table's rows written through `database`.
fn primaries_of<'a>(cluster: &'a Cluster, database: &str) -> Vec<&'a pgshard_tests::Node> {
    let shards = if database == "app" {
        1
    } else {
        cluster.shards().len()
    };
    cluster.shards()[..shards]
        .iter()
        .map(|s| s.primary())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statements_of_concurrent_clients_never_mix() -> Result<()> {
    const READERS: usize = 4;
    const WRITERS: usize = 2;
    const ROUNDS: usize = 150;
    let cluster = Cluster::start(2, 1).await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    on_every_primary(&cluster, "CREATE TABLE ledger (writer text, n int)").await?;
    for (mode, database) in modes_and_databases(&cluster) {
        on_every_primary(&cluster, "TRUNCATE ledger").await?;
        // Two server connections per node for six clients: in transaction pooling every
        // round trip may land on a connection another client used last. Session pooling
        // needs one per client.
        let size = if mode == PoolMode::Transaction { 2 } else { 6 };
        let proxy = proxy(&cluster, mode, size, "").await?;
        let user = app_on(database);
        let readers = (0..READERS).map(|r| {
            let user = user.clone();
            let addr = proxy.addr;
            async move {
                let (mut conn, _) = RawConnection::login(addr, &user).await?;
                for i in 0..ROUNDS {
                    let asked = format!("C{r}-{i}");
                    let replies = lib_pq_style(&mut conn, "SELECT $1::text", &asked).await?;
                    let got = rows(&replies);
                    ensure!(
                        got == vec![vec![Some(asked.clone())]],
                        "{mode:?} on {database}: client C{r} asked for {asked:?}, got {got:?}"
                    );
                }
                anyhow::Ok(())
            }
        });
        let writers = (0..WRITERS).map(|w| {
            let user = user.clone();
            let addr = proxy.addr;
            async move {
                let (mut conn, _) = RawConnection::login(addr, &user).await?;
                let mut acknowledged = 0i64;
                for i in 0..ROUNDS {
                    let replies = lib_pq_style(
                        &mut conn,
                        &format!("INSERT INTO ledger VALUES ('W{w}', $1::int)"),
                        &i.to_string(),
                    )
                    .await?;
                    ensure!(
                        replies
                            .iter()
                            .any(|m| m.tag == b'C' && m.body.starts_with(b"INSERT 0 1")),
                        "{mode:?} on {database}: writer W{w} got {replies:?}"
                    );
                    acknowledged += 1;
                }
                anyhow::Ok((format!("W{w}"), acknowledged))
            }
        });
        let (read_results, write_results) = tokio::join!(
            futures::future::join_all(readers),
            futures::future::join_all(writers)
        );
        for result in read_results {
            result?;
        }
        let write_results: Vec<(String, i64)> = write_results.into_iter().collect::<Result<_>>()?;
        for primary in primaries_of(&cluster, database) {
            let primary = primary.client(&User::app()).await?;
            for (writer, acknowledged) in &write_results {
                let stored: i64 = primary
                    .query_one("SELECT count(*) FROM ledger WHERE writer = $1", &[writer])
                    .await?
                    .get(0);
                assert_eq!(
                    stored, *acknowledged,
                    "{mode:?} on {database}: rows of {writer}"
                );
            }
            let total: i64 = primary
                .query_one("SELECT count(*) FROM ledger", &[])
                .await?
                .get(0);
            assert_eq!(
                total,
                (WRITERS * ROUNDS) as i64,
                "{mode:?} on {database}: rows in all"
            );
        }
        proxy.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_names_belong_to_their_client() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    on_every_primary(&cluster, "CREATE TABLE kept (client int, n int)").await?;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, "").await?;
    for database in databases(&cluster) {
        on_every_primary(&cluster, "TRUNCATE kept").await?;
        statement_names_on(&cluster, &proxy, database).await?;
    }
    Ok(())
}

async fn statement_names_on(cluster: &Cluster, proxy: &ProxyHandle, database: &str) -> Result<()> {
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 20;
    let user = app_on(database);
    // As PHP PDO and DBD::Pg free a statement inside a transaction: DEALLOCATE of a name
    // the client prepared over the extended protocol, then COMMIT.
    let clients = (0..CLIENTS).map(|c| {
        let user = user.clone();
        let addr = proxy.addr;
        async move {
            let (mut conn, _) = RawConnection::login(addr, &user).await?;
            for n in 0..ROUNDS {
                let began = round_trip(&mut conn, &[wire::query("BEGIN")]).await?;
                ensure!(error_of(&began).is_none(), "BEGIN: {began:?}");
                let name = format!("stmt_{n}");
                let inserted = round_trip(
                    &mut conn,
                    &[
                        wire::parse(&name, "INSERT INTO kept VALUES ($1::int, $2::int)"),
                        wire::bind(&name, &[Some(&c.to_string()), Some(&n.to_string())]),
                        wire::execute(),
                        wire::sync(),
                    ],
                )
                .await?;
                ensure!(error_of(&inserted).is_none(), "insert: {inserted:?}");
                let freed =
                    round_trip(&mut conn, &[wire::query(&format!("DEALLOCATE {name}"))]).await?;
                ensure!(
                    error_of(&freed).is_none()
                        && freed
                            .iter()
                            .any(|m| m.tag == b'C' && m.body == b"DEALLOCATE\0")
                        && freed.last().map(|m| m.body.clone()) == Some(b"T".to_vec()),
                    "DEALLOCATE {name} inside a transaction on {database}: {freed:?}"
                );
                let committed = round_trip(&mut conn, &[wire::query("COMMIT")]).await?;
                ensure!(
                    committed
                        .iter()
                        .any(|m| m.tag == b'C' && m.body == b"COMMIT\0"),
                    "COMMIT on {database}: {committed:?}"
                );
                // The name is gone for this client, as in PostgreSQL.
                let gone = round_trip(
                    &mut conn,
                    &[
                        wire::bind(&name, &[Some("0"), Some("0")]),
                        wire::execute(),
                        wire::sync(),
                    ],
                )
                .await?;
                ensure!(
                    gone.iter()
                        .any(|m| m.sqlstate().as_deref() == Some("26000")),
                    "Bind of a deallocated statement on {database}: {gone:?}"
                );
            }
            anyhow::Ok(())
        }
    });
    for result in futures::future::join_all(clients).await {
        result?;
    }
    for primary in primaries_of(cluster, database) {
        let stored = primary.query_one_i64("SELECT count(*) FROM kept").await?;
        assert_eq!(
            stored,
            (CLIENTS * ROUNDS) as i64,
            "acknowledged inserts through {database}"
        );
    }

    // The proxy's own statement names are nobody's: not through SQL, not through Bind.
    let (mut owner, _) = RawConnection::login(proxy.addr, &user).await?;
    let owned = round_trip(
        &mut owner,
        &[
            wire::parse("mine", "INSERT INTO kept VALUES (-1, $1::int)"),
            wire::sync(),
        ],
    )
    .await?;
    ensure!(error_of(&owned).is_none(), "{owned:?}");
    let (mut intruder, _) = RawConnection::login(proxy.addr, &user).await?;
    for n in 1..=20 {
        let name = format!("pgshard_s{n}");
        let bound = round_trip(
            &mut intruder,
            &[
                wire::bind(&name, &[Some("7")]),
                wire::execute(),
                wire::sync(),
            ],
        )
        .await?;
        assert_eq!(
            bound.iter().find_map(|m| m.sqlstate()),
            Some("26000".to_string()),
            "Bind of {name} on {database}: {bound:?}"
        );
        for sql in [
            format!("DEALLOCATE {name}"),
            format!("EXECUTE {name}(7)"),
            format!("PREPARE {name} AS SELECT 1"),
        ] {
            let refused = round_trip(&mut intruder, &[wire::query(&sql)]).await?;
            let code = refused.iter().find_map(|m| m.sqlstate());
            // One shard: the names are reserved. Sharded: a client's statements live in
            // the proxy, so the name is unknown (26000); SQL PREPARE and EXECUTE are
            // refused there (0A000).
            let allowed: &[&str] = if database == "app" {
                &["42939"]
            } else {
                &["26000", "0A000"]
            };
            assert!(
                code.as_deref().is_some_and(|c| allowed.contains(&c)),
                "{sql} on {database}: {refused:?}"
            );
        }
    }
    for primary in primaries_of(cluster, database) {
        let ran = primary
            .query_one_i64("SELECT count(*) FROM kept WHERE client = -1")
            .await?;
        assert_eq!(ran, 0, "another client's statement ran through {database}");
    }
    let used = round_trip(
        &mut owner,
        &[
            wire::bind("mine", &[Some("1")]),
            wire::execute(),
            wire::sync(),
        ],
    )
    .await?;
    ensure!(
        error_of(&used).is_none(),
        "the owner's statement broke on {database}: {used:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_and_settings_never_reach_another_client() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    for shard in cluster.shards() {
        shard
            .primary()
            .client(&User::postgres())
            .await?
            .batch_execute(
                "CREATE ROLE other_role; GRANT other_role TO app; \
                 CREATE SCHEMA s1 AUTHORIZATION app",
            )
            .await?;
    }
    for mode in [PoolMode::Transaction, PoolMode::Session] {
        // Two server connections: one may be pinned by a client that changed its role; the
        // bystander and the other changers take turns on the other.
        let proxy = proxy(&cluster, mode, 2, "").await?;
        for database in databases(&cluster) {
            let bystander = connect(&proxy, database, &[]).await?;
            let mut before = Vec::new();
            for sql in BYSTANDER_VIEW {
                before.push(value(&bystander, sql).await?);
            }
            assert_eq!(before[0], "app");

            for change in [
                "SET SESSION ROLE other_role",
                "SET ROLE other_role",
                "SET SESSION AUTHORIZATION other_role",
                "SET SCHEMA 's1'",
                "SET NAMES 'LATIN1'",
                "SET XML OPTION DOCUMENT",
                "SET TIME ZONE 'Asia/Tokyo'",
                "SET SESSION search_path TO s1",
                // A backslash-escaped quote that does not end the string.
                r"SELECT E'\''; SET search_path TO s1; --'",
            ] {
                let changer = connect(&proxy, database, &[]).await?;
                let result = changer.batch_execute(change).await;
                let role_change = change.contains("ROLE") || change.contains("AUTHORIZATION");
                if change.contains("AUTHORIZATION") {
                    // Only a superuser may; the refusal leaves nothing behind either.
                    ensure!(result.is_err(), "{change} was allowed on {database}");
                } else if role_change && database == "sharded" {
                    // A role would have to follow the client onto every shard it reaches
                    // later: refused, with what to do instead.
                    let error = result
                        .err()
                        .context("a role change on a sharded database")?;
                    assert_eq!(sqlstate(&error), Some("0A000"), "{change}: {error}");
                } else {
                    result.with_context(|| format!("{change} on {database}"))?;
                }
                for _ in 0..3 {
                    let mut seen = Vec::new();
                    for sql in BYSTANDER_VIEW {
                        seen.push(value(&bystander, sql).await?);
                    }
                    assert_eq!(
                        seen, before,
                        "{mode:?} on {database}: after another client's {change}"
                    );
                }
                // The changer keeps its own change across transactions.
                if change.contains("ROLE") && database == "app" {
                    assert_eq!(value(&changer, "SELECT current_user").await?, "other_role");
                }
            }
        }
        proxy.shutdown().await;
    }
    Ok(())
}

/// What a client that changed nothing must keep seeing.
const BYSTANDER_VIEW: [&str; 5] = [
    "SELECT current_user",
    "SHOW search_path",
    "SHOW client_encoding",
    "SHOW xmloption",
    "SHOW TimeZone",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_partial_settings_come_back_to_the_clients_own() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    for (mode, database) in modes_and_databases(&cluster) {
        // Transaction pooling: two server connections for three clients. Session pooling:
        // one each.
        let size = if mode == PoolMode::Transaction { 2 } else { 3 };
        let proxy = proxy(&cluster, mode, size, "").await?;
        let client = connect(
            &proxy,
            database,
            &[
                ("TimeZone", "America/New_York"),
                ("DateStyle", "Postgres, MDY"),
            ],
        )
        .await?;
        // Others with other settings use the same server connections in between.
        let others = [
            connect(&proxy, database, &[("TimeZone", "UTC")]).await?,
            connect(&proxy, database, &[("DateStyle", "ISO, YMD")]).await?,
        ];
        client.batch_execute("SET TIME ZONE 'Asia/Tokyo'").await?;
        client.batch_execute("RESET TIME ZONE").await?;
        client.batch_execute("SET DateStyle TO dmy").await?;
        for round in 0..10 {
            for other in &others {
                value(other, "SELECT 1").await?;
            }
            let what = format!("{mode:?} on {database}, round {round}");
            assert_eq!(
                value(&client, "SHOW TimeZone").await?,
                "America/New_York",
                "{what}: RESET TIME ZONE goes back to the startup value"
            );
            assert_eq!(
                value(&client, "SHOW DateStyle").await?,
                "Postgres, DMY",
                "{what}: SET DateStyle TO dmy keeps the output style"
            );
            assert_eq!(
                value(&client, "SELECT '03/04/2024'::date::text").await?,
                "03-04-2024",
                "{what}"
            );
        }
        proxy.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_batch_leaves_nothing_to_the_next() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    on_every_primary(&cluster, "CREATE TABLE left_behind (v text)").await?;
    // One server connection per node: the next client gets the one the departed client
    // used.
    let proxy = proxy(&cluster, PoolMode::Transaction, 1, "").await?;
    for database in databases(&cluster) {
        on_every_primary(&cluster, "TRUNCATE left_behind").await?;
        let user = app_on(database);
        for round in 0..5 {
            let (mut departing, _) = RawConnection::login(proxy.addr, &user).await?;
            departing
                .send_bytes(
                    &[
                        wire::parse("", "BEGIN"),
                        wire::bind("", &[]),
                        wire::execute(),
                        wire::parse("", "INSERT INTO left_behind VALUES ('departed')"),
                        wire::bind("", &[]),
                        wire::execute(),
                        wire::parse("", "SET DateStyle = 'SQL, DMY'"),
                        wire::bind("", &[]),
                        wire::execute(),
                        flush(),
                    ]
                    .concat(),
                )
                .await?;
            // Its replies up to the Flush arrive; then it leaves without Sync.
            for _ in 0..9 {
                let reply = departing.expect_message().await?;
                ensure!(reply.tag != b'E', "{database}: {reply:?}");
            }
            drop(departing);

            let next = tokio::time::timeout(Duration::from_secs(15), async {
                let next = connect(&proxy, database, &[]).await?;
                let style = value(&next, "SHOW DateStyle").await?;
                next.batch_execute("INSERT INTO left_behind VALUES ('next')")
                    .await?;
                let date = value(&next, "SELECT '03/04/2024'::date::text").await?;
                anyhow::Ok((style, date))
            })
            .await
            .map_err(|_| anyhow!("{database}, round {round}: the next client hung"))??;
            assert_eq!(
                next,
                ("ISO, MDY".to_string(), "2024-03-04".to_string()),
                "{database}, round {round}"
            );
        }
        for primary in primaries_of(&cluster, database) {
            assert_eq!(
                primary
                    .query_one_i64("SELECT count(*) FROM left_behind WHERE v = 'departed'")
                    .await?,
                0,
                "{database}: an abandoned, uncommitted insert was committed"
            );
            assert_eq!(
                primary
                    .query_one_i64("SELECT count(*) FROM left_behind WHERE v = 'next'")
                    .await?,
                5,
                "{database}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_settings_replay_gives_the_servers_error() -> Result<()> {
    let cluster = Cluster::start(1, 1).await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, "").await?;
    // Server connection X loads plpgsql (its validator) inside a transaction held open; the client's
    // placeholder setting is accepted on the other one, Y, where plpgsql is not loaded.
    let holder_x = connect(&proxy, "app", &[]).await?;
    holder_x
        .batch_execute(
            "BEGIN; CREATE OR REPLACE FUNCTION loads_plpgsql() RETURNS int LANGUAGE plpgsql \
             AS $$BEGIN RETURN 1; END$$",
        )
        .await?;
    let client = connect(&proxy, "app", &[]).await?;
    client.batch_execute("SET plpgsql.pgshard_test = 1").await?;
    let holder_y = connect(&proxy, "app", &[]).await?;
    holder_y.batch_execute("BEGIN; SELECT 1").await?;
    holder_x.batch_execute("COMMIT").await?;
    // The client's next write gets X, where the replay fails as the SET would have.
    let error = client
        .batch_execute("CREATE TABLE IF NOT EXISTS replay_probe (v int)")
        .await
        .err()
        .context("the write ran although its settings could not be made")?;
    assert_eq!(
        sqlstate(&error),
        Some("42602"),
        "the server's own error, not 08006: {error}"
    );
    holder_y.batch_execute("COMMIT").await?;
    // The nodes stay in service: everyone else's reads and writes go on at once.
    let other = connect(&proxy, "app", &[]).await?;
    other
        .batch_execute("CREATE TABLE IF NOT EXISTS after_replay (v int)")
        .await?;
    let reader = connect(&proxy, "app", &[]).await?;
    for _ in 0..5 {
        assert_eq!(value(&reader, "SELECT pg_is_in_recovery()").await?, "t");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_mode_client_waits_for_the_primary_never_a_replica() -> Result<()> {
    let cluster = Cluster::start(1, 1).await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let proxy = proxy(&cluster, PoolMode::Session, 1, "").await?;
    let first = connect(&proxy, "app", &[]).await?;
    assert_eq!(value(&first, "SELECT pg_is_in_recovery()").await?, "f");
    // The primary's only server connection is taken: the next client waits for it past
    // connect_timeout (2 s) rather than being given the replica.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(first);
    });
    let second = connect(&proxy, "app", &[]).await?;
    release.await?;
    assert_eq!(value(&second, "SELECT pg_is_in_recovery()").await?, "f");
    second
        .batch_execute("CREATE TABLE session_write (v int); INSERT INTO session_write VALUES (1)")
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sharing_a_server_user_have_pools_of_their_own() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let users = r#"
[[users]]
name = "small"
password = "small-secret"
server_user = "app"
server_password = "app"
pool_size = 1
[[users]]
name = "large"
password = "large-secret"
server_user = "app"
server_password = "app"
pool_size = 3
"#;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, users).await?;
    // The small user's pool is made first; the large user's is its own, of 3.
    let small = connect_as(&proxy, &User::new("small", "small-secret", "app"), &[]).await?;
    value(&small, "SELECT 1").await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        let client = connect_as(&proxy, &User::new("large", "large-secret", "app"), &[]).await?;
        client.batch_execute("BEGIN").await?;
        let pid = value(&client, "SELECT pg_backend_pid()").await?;
        held.push((client, pid));
    }
    let pids: std::collections::HashSet<_> = held.iter().map(|(_, pid)| pid.clone()).collect();
    assert_eq!(
        pids.len(),
        3,
        "three transactions at once on three connections"
    );
    // The small user still has its one connection, while the large user holds three.
    assert_eq!(value(&small, "SELECT 2").await?, "2");
    for (client, _) in held {
        client.batch_execute("COMMIT").await?;
    }
    Ok(())
}

/// A script of `tests/drivers/`.
fn driver_script(name: &str) -> String {
    format!("{}/drivers/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_lib_pq_clients_get_their_own_answers_and_keep_their_writes() -> Result<()> {
    let cluster = Cluster::start(1, 1).await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, "").await?;
    let cache = pgshard_tests::ScratchDir::new("go-cache")?;
    let gocache = format!("GOCACHE={}", cache.path().display());
    let script = driver_script("lib_pq_clients.go");
    // Debian's golang-go and golang-github-lib-pq-dev, in GOPATH mode.
    let output = run_tool(
        "env",
        proxy.addr,
        &User::app(),
        &[
            "GOPATH=/usr/share/gocode",
            "GO111MODULE=off",
            &gocache,
            "go",
            "run",
            &script,
        ],
        Duration::from_secs(300),
    )
    .await?;
    assert!(
        output.status.success(),
        "lib/pq clients failed: {}",
        output.describe()
    );
    let primary = cluster.shard(0).primary().client(&User::app()).await?;
    let mut writers = 0;
    for line in output.stdout.lines() {
        let Some(rest) = line.strip_prefix("acknowledged ") else {
            continue;
        };
        let (writer, acknowledged) = rest.split_once(' ').context("acknowledged line")?;
        let acknowledged: i64 = acknowledged.parse()?;
        let stored: i64 = primary
            .query_one(
                "SELECT count(*) FROM go_ledger WHERE writer = $1",
                &[&writer],
            )
            .await?
            .get(0);
        assert_eq!(
            stored,
            acknowledged,
            "rows of {writer}: {}",
            output.describe()
        );
        writers += 1;
    }
    assert_eq!(writers, 2, "{}", output.describe());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_pdo_commits_survive_freeing_statements_in_a_transaction() -> Result<()> {
    const CLIENTS: usize = 3;
    let cluster = Cluster::start(1, 1).await?;
    cluster.wait_streaming(Duration::from_secs(60)).await?;
    let primary = cluster.shard(0).primary();
    primary
        .execute("CREATE TABLE pdo_ledger (client text, n int)")
        .await?;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, "").await?;
    let script = driver_script("pdo_deallocate.php");
    let runs = (0..CLIENTS).map(|c| {
        let script = script.clone();
        let addr = proxy.addr;
        async move {
            let client = format!("P{c}");
            let output = run_tool(
                "php",
                addr,
                &User::app(),
                &[&script, &client, "100"],
                Duration::from_secs(300),
            )
            .await?;
            anyhow::Ok((client, output))
        }
    });
    for result in futures::future::join_all(runs).await {
        let (client, output) = result?;
        assert!(
            output.status.success(),
            "PDO client {client}: {}",
            output.describe()
        );
        let acknowledged: i64 = output
            .stdout
            .trim()
            .strip_prefix("acknowledged ")
            .context("no count printed")?
            .parse()?;
        let stored = primary
            .query_one_i64(&format!(
                "SELECT count(*) FROM pdo_ledger WHERE client = '{client}'"
            ))
            .await?;
        assert_eq!((stored, acknowledged), (100, 100), "PDO client {client}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_log_in_to_a_sharded_database_while_its_first_shard_is_down() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, "").await?;
    cluster.shard(0).primary().stop().await?;
    let client = connect(&proxy, "sharded", &[]).await?;
    assert_eq!(
        value(&client, "/* pgshard: shard=1 */ SELECT 'served by shard 1'").await?,
        "served by shard 1"
    );
    let error = client
        .simple_query("/* pgshard: shard=0 */ SELECT 1")
        .await
        .err()
        .context("shard 0 answered while stopped")?;
    assert_eq!(sqlstate(&error), Some("08006"), "{error}");
    Ok(())
}

/// A raw connection logged in to `database` with `client_encoding = LATIN1`.
async fn latin1_client(proxy: &ProxyHandle, database: &str) -> Result<RawConnection> {
    let user = app_on(database);
    let mut conn = RawConnection::connect(proxy.addr).await?;
    conn.send_bytes(&wire::startup_packet(&[
        ("user", &user.name),
        ("database", &user.database),
        ("client_encoding", "LATIN1"),
    ]))
    .await?;
    conn.authenticate(&user).await?;
    let greeting = conn.read_until_ready().await?;
    ensure!(error_of(&greeting).is_none(), "{greeting:?}");
    Ok(conn)
}

/// A simple query of raw bytes (text in the client's encoding).
fn latin1_query(sql: &[u8]) -> Vec<u8> {
    let mut body = sql.to_vec();
    body.push(0);
    wire::message(b'Q', &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_in_another_client_encoding_is_tracked_or_refused_never_lost() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = proxy(&cluster, PoolMode::Transaction, 2, "").await?;

    // One shard: a setting whose text is LATIN1 cannot be replayed as read, so the client
    // keeps its server connection, and nobody else gets the setting.
    let mut latin1 = latin1_client(&proxy, "app").await?;
    let set = round_trip(&mut latin1, &[latin1_query(b"SET my.label = 'caf\xe9'")]).await?;
    ensure!(error_of(&set).is_none(), "{set:?}");
    let bystander = connect(&proxy, "app", &[]).await?;
    for _ in 0..3 {
        let label = "SELECT coalesce(current_setting('my.label', true), 'unset')";
        assert_eq!(value(&bystander, label).await?, "unset");
        let shown = round_trip(&mut latin1, &[wire::query("SHOW my.label")]).await?;
        assert_eq!(
            rows(&shown),
            vec![vec![Some(String::from_utf8_lossy(b"caf\xe9").into_owned())]]
        );
    }

    // Sharded: the planner reads UTF-8 only; other text is refused, and the session goes on.
    let mut latin1 = latin1_client(&proxy, "sharded").await?;
    let refused = round_trip(&mut latin1, &[latin1_query(b"SELECT 'caf\xe9'")]).await?;
    assert_eq!(
        refused.iter().find_map(|m| m.sqlstate()),
        Some("22021".to_string()),
        "{refused:?}"
    );
    let after = round_trip(&mut latin1, &[wire::query("SELECT 'still here'")]).await?;
    assert_eq!(rows(&after), vec![vec![Some("still here".to_string())]]);
    Ok(())
}
