//! The admin console's PgBouncer-style listings, read through `psql` as an operator reads
//! them: `SHOW CLIENTS`, `SHOW SERVERS`, `SHOW LISTS` and `SHOW VERSION` show exactly
//! the clients and server connections alive, and which of them are busy.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_tests::{admin_user, connect, run_tool, start_failover_proxy, Cluster, User};

/// The rows `psql` prints for `command`, each as column name → value.
async fn show(addr: std::net::SocketAddr, command: &str) -> Result<Vec<HashMap<String, String>>> {
    let out = run_tool(
        "psql",
        addr,
        &admin_user(),
        &["-X", "-A", "-F", "|", "-P", "footer=off", "-c", command],
        Duration::from_secs(10),
    )
    .await?;
    ensure!(out.status.success(), "{command}: {}", out.describe());
    let mut lines = out.stdout.lines();
    let header: Vec<&str> = lines.next().context("no header")?.split('|').collect();
    Ok(lines
        .map(|line| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(line.split('|').map(str::to_string))
                .collect()
        })
        .collect())
}

fn count(rows: &[HashMap<String, String>], column: &str, value: &str) -> usize {
    rows.iter().filter(|r| r[column] == value).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_clients_servers_and_their_states() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = start_failover_proxy(&cluster, "").await?;
    let addr = proxy.addr;

    let version = show(addr, "SHOW VERSION").await?;
    ensure!(
        version.len() == 1 && version[0]["version"].starts_with("pgshard "),
        "{version:?}"
    );

    let idle = connect(addr, &User::app()).await?;
    idle.simple_query("SELECT 1").await?;
    let reporting = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("app")
        .password("app")
        .dbname("app")
        .application_name("reporting")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(reporting.1);
    let reporting = reporting.0;
    let busy = connect(addr, &User::app()).await?;
    busy.batch_execute("BEGIN").await?;
    let busy_pid: i32 = busy.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);

    let clients = show(addr, "SHOW CLIENTS").await?;
    ensure!(clients.len() == 3, "{clients:?}");
    ensure!(clients.iter().all(|c| c["type"] == "C"
        && c["user"] == "app"
        && c["database"] == "app"
        && c["addr"] == "127.0.0.1"
        && c["port"].parse::<u16>().is_ok()
        && c["tls"] == "no"));
    ensure!(count(&clients, "state", "active") == 1, "{clients:?}");
    ensure!(
        count(&clients, "application_name", "reporting") == 1,
        "{clients:?}"
    );

    let servers = show(addr, "SHOW SERVERS").await?;
    let active: Vec<_> = servers.iter().filter(|s| s["state"] == "active").collect();
    ensure!(active.len() == 1, "{servers:?}");
    ensure!(
        active[0]["remote_pid"] == busy_pid.to_string(),
        "{servers:?}"
    );
    ensure!(servers
        .iter()
        .all(|s| s["type"] == "S" && s["user"] == "app" && s["database"] == "app"));

    let lists: HashMap<String, String> = show(addr, "SHOW LISTS")
        .await?
        .into_iter()
        .map(|row| (row["list"].clone(), row["items"].clone()))
        .collect();
    ensure!(
        lists["databases"] == "1" && lists["users"] == "2",
        "{lists:?}"
    );
    ensure!(
        lists["used_clients"] == "1" && lists["free_clients"] == "2",
        "{lists:?}"
    );
    ensure!(lists["used_servers"] == "1", "{lists:?}");
    ensure!(
        lists["free_servers"] == (servers.len() - 1).to_string(),
        "{lists:?}"
    );

    // The transaction ends: nothing is busy. The clients leave: none is listed.
    busy.batch_execute("COMMIT").await?;
    let clients = show(addr, "SHOW CLIENTS").await?;
    ensure!(count(&clients, "state", "idle") == 3, "{clients:?}");
    let servers = show(addr, "SHOW SERVERS").await?;
    ensure!(count(&servers, "state", "active") == 0, "{servers:?}");
    drop((idle, reporting, busy));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let clients = show(addr, "SHOW CLIENTS").await?;
        if clients.is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "clients still listed after they left: {clients:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.shutdown().await;
    Ok(())
}

/// `psql -c command` as the admin user: its exit status must be success.
async fn console(addr: std::net::SocketAddr, command: &str) -> Result<String> {
    let out = run_tool(
        "psql",
        addr,
        &admin_user(),
        &["-X", "-At", "-c", command],
        Duration::from_secs(60),
    )
    .await?;
    ensure!(out.status.success(), "{command}: {}", out.describe());
    Ok(out.stdout)
}

async fn backend_pid(client: &tokio_postgres::Client) -> Result<i32> {
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0))
}

/// `RECONNECT` replaces server connections once released, `DISABLE` refuses new clients
/// (not those in), `PAUSE` waits for running transactions and holds new ones until
/// `RESUME`, and `SHUTDOWN` asks the proxy to stop; each through psql.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reconnects_disables_pauses_and_shuts_down() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = start_failover_proxy(&cluster, "").await?;
    let addr = proxy.addr;

    let client = connect(addr, &User::app()).await?;
    let before = backend_pid(&client).await?;
    ensure!(
        backend_pid(&client).await? == before,
        "the pool did not reuse its connection"
    );
    console(addr, "RECONNECT app").await?;
    let after = backend_pid(&client).await?;
    ensure!(after != before, "RECONNECT kept server process {before}");
    let servers = show(addr, "SHOW SERVERS").await?;
    ensure!(
        servers
            .iter()
            .all(|s| s["remote_pid"] != before.to_string()),
        "{servers:?}"
    );

    console(addr, "DISABLE app").await?;
    let refused = connect(addr, &User::app())
        .await
        .err()
        .context("a client got in")?;
    ensure!(
        pgshard_tests::sqlstate(&refused) == Some("55000"),
        "{refused}"
    );
    ensure!(
        backend_pid(&client).await.is_ok(),
        "a client already in was refused"
    );
    console(addr, "ENABLE app").await?;
    connect(addr, &User::app()).await.context("after ENABLE")?;

    // PAUSE waits for the open transaction; a new one waits for RESUME.
    let busy = connect(addr, &User::app()).await?;
    busy.batch_execute("BEGIN; SELECT 1").await?;
    let pause = tokio::spawn(async move { console(addr, "PAUSE app").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        !pause.is_finished(),
        "PAUSE returned with a transaction open"
    );
    let held = tokio::spawn(async move { backend_pid(&client).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(!held.is_finished(), "a new transaction ran during PAUSE");
    busy.batch_execute("COMMIT").await?;
    tokio::time::timeout(Duration::from_secs(5), pause)
        .await
        .context("PAUSE did not return once the transaction ended")???;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(!held.is_finished(), "a held transaction ran before RESUME");
    console(addr, "RESUME app").await?;
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .context("the held transaction did not run after RESUME")???;

    console(addr, "SHUTDOWN").await?;
    tokio::time::timeout(Duration::from_secs(5), proxy.stop_requested())
        .await
        .context("SHUTDOWN was not heard")?;
    proxy.shutdown().await;
    Ok(())
}

/// `KILL` ends every client of the database at once, idle or in a transaction (whose
/// write is rolled back), while new clients get in; `WAIT_CLOSE` returns once the server
/// connections a `RECONNECT` left in use are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_kills_a_databases_clients_and_waits_for_closes() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = start_failover_proxy(&cluster, "").await?;
    let addr = proxy.addr;
    let setup = connect(addr, &User::app()).await?;
    setup.batch_execute("CREATE TABLE killed (id int)").await?;

    // WAIT_CLOSE waits for the connection a transaction holds across a RECONNECT.
    let busy = connect(addr, &User::app()).await?;
    busy.batch_execute("BEGIN; INSERT INTO killed VALUES (1)")
        .await?;
    console(addr, "RECONNECT").await?;
    let wait = tokio::spawn(async move { console(addr, "WAIT_CLOSE app").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        !wait.is_finished(),
        "WAIT_CLOSE returned with a connection to close in use"
    );
    busy.batch_execute("COMMIT").await?;
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .context("WAIT_CLOSE did not return")???;

    let idle = connect(addr, &User::app()).await?;
    idle.simple_query("SELECT 1").await?;
    busy.batch_execute("BEGIN; INSERT INTO killed VALUES (2)")
        .await?;
    console(addr, "KILL app").await?;
    for (what, client) in [("idle", &idle), ("in a transaction", &busy)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !client.is_closed() {
            ensure!(
                std::time::Instant::now() < deadline,
                "the {what} client was not killed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after = connect(addr, &User::app())
        .await
        .context("a new client after KILL")?;
    let rows: Vec<i32> = after
        .query("SELECT id FROM killed ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        rows == [1],
        "the killed transaction's row was kept: {rows:?}"
    );
    // The setup client was one of the database's too; only the new one is listed.
    ensure!(setup.is_closed(), "the setup client was not killed");
    let clients = show(addr, "SHOW CLIENTS").await?;
    ensure!(
        clients.len() == 1,
        "killed clients are still listed: {clients:?}"
    );
    proxy.shutdown().await;
    Ok(())
}

/// `SHOW STATS` counts a database's transactions (a statement outside one counts as
/// one), its requests to their ReadyForQuery, its bytes and times, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_shows_each_databases_traffic() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let proxy = start_failover_proxy(&cluster, "").await?;
    let addr = proxy.addr;
    cluster
        .shard(0)
        .primary()
        .client(&User::app())
        .await?
        .batch_execute("CREATE TABLE counted (id int)")
        .await?;
    let client = connect(addr, &User::app()).await?;
    for i in 0..10 {
        client.simple_query("BEGIN").await?;
        client
            .simple_query(&format!("INSERT INTO counted VALUES ({i})"))
            .await?;
        client.simple_query("COMMIT").await?;
    }
    for _ in 0..5 {
        client.simple_query("SELECT 1").await?;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let stats = loop {
        let rows = show(addr, "SHOW STATS").await?;
        let app = rows
            .into_iter()
            .find(|r| r["database"] == "app")
            .context("no row for app")?;
        if app["total_xact_count"] == "15" || std::time::Instant::now() >= deadline {
            break app;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let number = |column: &str| stats[column].parse::<u64>().unwrap_or(u64::MAX);
    ensure!(number("total_xact_count") == 15, "{stats:?}");
    ensure!(number("total_query_count") == 35, "{stats:?}");
    ensure!(
        number("total_received") > 0 && number("total_sent") > 0,
        "{stats:?}"
    );
    ensure!(
        number("total_xact_time") >= number("total_query_time") * 9 / 10,
        "transactions took less than their queries: {stats:?}"
    );
    ensure!(number("avg_query_time") > 0, "{stats:?}");
    ensure!(
        number("p99_query_time") >= number("p50_query_time") && number("p50_query_time") > 0,
        "{stats:?}"
    );
    proxy.shutdown().await;
    Ok(())
}
