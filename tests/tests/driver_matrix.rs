//! Real drivers run one scenario each — psycopg 3 and asyncpg from PyPI
//! (`tests/drivers/python_clients.py`), pgjdbc from Debian (`tests/drivers/JdbcClients.java`,
//! with prepareThreshold 1, -1 and 5), Go's lib/pq and pgx v4 from Debian
//! (`tests/drivers/go_clients.go`, pgx with and without its statement cache), node-pg from
//! Debian (`tests/drivers/node_pg_clients.js`, unpacked by `prepare-node-pg.sh`), ruby-pg
//! from Debian (`tests/drivers/ruby_pg_clients.rb`), PHP's PDO from Debian
//! (`tests/drivers/php_pdo_clients.php`), DBD::Pg from Debian
//! (`tests/drivers/dbd_pg_clients.pl`); `.ci/run` installs them — straight against
//! PostgreSQL and through pgshard in transaction pooling, on one shard and on two: every
//! check must pass both ways, and every write the clients were told succeeded must be
//! stored.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_config::PoolMode;
use pgshard_proxy::ProxyHandle;
use pgshard_tests::{
    connect, run_tool, start_sharded_proxy, Cluster, ProxyOptions, ScratchDir, TestProxy, User,
};

/// A driver and how it is set up.
#[derive(Clone, Copy)]
enum Driver {
    Psycopg,
    /// psycopg's pure-Python implementation on the machine's libpq (Debian's libpq5).
    PsycopgSystemLibpq,
    Asyncpg,
    Jdbc {
        prepare_threshold: i32,
    },
    /// `lib/pq`, `pgx` or `pgx-nocache`.
    Go(&'static str),
    NodePg,
    RubyPg,
    PhpPdo,
    DbdPg,
}

const DRIVERS: [Driver; 13] = [
    Driver::Psycopg,
    Driver::PsycopgSystemLibpq,
    Driver::Asyncpg,
    Driver::Jdbc {
        prepare_threshold: 1,
    },
    Driver::Jdbc {
        prepare_threshold: -1,
    },
    Driver::Jdbc {
        prepare_threshold: 5,
    },
    Driver::Go("lib/pq"),
    Driver::Go("pgx"),
    Driver::Go("pgx-nocache"),
    Driver::NodePg,
    Driver::RubyPg,
    Driver::PhpPdo,
    Driver::DbdPg,
];

impl Driver {
    fn name(self) -> String {
        match self {
            Driver::Psycopg => "psycopg".to_string(),
            Driver::PsycopgSystemLibpq => "psycopg (system libpq)".to_string(),
            Driver::Asyncpg => "asyncpg".to_string(),
            Driver::Jdbc { prepare_threshold } => {
                format!("pgjdbc (prepareThreshold={prepare_threshold})")
            }
            Driver::Go(driver) => format!("Go {driver}"),
            Driver::NodePg => "node-pg".to_string(),
            Driver::RubyPg => "ruby-pg".to_string(),
            Driver::PhpPdo => "PHP PDO".to_string(),
            Driver::DbdPg => "DBD::Pg".to_string(),
        }
    }

    /// Rows the scenario leaves besides the concurrent clients' writes (ids from 1000).
    fn fixed_rows(self) -> i64 {
        match self {
            // Rows 1 and 2; these scenarios copy nothing.
            Driver::Go(_) | Driver::NodePg => 2,
            // Rows 1 and 2, and 20 copied in.
            _ => 22,
        }
    }

    /// The scenario's table, sharded by `id` on a sharded database.
    fn table(self) -> &'static str {
        match self {
            Driver::Psycopg => "drv_psycopg",
            Driver::PsycopgSystemLibpq => "drv_psycopg_libpq",
            Driver::Asyncpg => "drv_asyncpg",
            Driver::Jdbc { .. } => "drv_jdbc",
            Driver::Go(_) => "drv_go",
            Driver::NodePg => "drv_node",
            Driver::RubyPg => "drv_ruby",
            Driver::PhpPdo => "drv_php",
            Driver::DbdPg => "drv_perl",
        }
    }
}

const TABLES: [&str; 9] = [
    "drv_perl",
    "drv_psycopg_libpq",
    "drv_php",
    "drv_psycopg",
    "drv_asyncpg",
    "drv_jdbc",
    "drv_go",
    "drv_node",
    "drv_ruby",
];

/// What the drivers need besides their packages: Go's build cache, and where node-pg was
/// unpacked.
struct Tools {
    go_cache: ScratchDir,
    node_path: String,
}

impl Tools {
    async fn prepare() -> Result<Tools> {
        let script = format!("{}/drivers/prepare-node-pg.sh", env!("CARGO_MANIFEST_DIR"));
        let output = tokio::process::Command::new("bash")
            .arg(&script)
            .output()
            .await
            .context("run prepare-node-pg.sh")?;
        ensure!(
            output.status.success(),
            "prepare-node-pg.sh: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Tools {
            go_cache: ScratchDir::new("go-cache")?,
            node_path: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        })
    }
}

/// Runs the scenario with `driver` against `addr`; the writes it says were acknowledged.
async fn scenario(driver: Driver, addr: SocketAddr, label: &str, tools: &Tools) -> Result<i64> {
    let drivers = format!("{}/drivers", env!("CARGO_MANIFEST_DIR"));
    let table = driver.table();
    let (program, args) = match driver {
        Driver::Psycopg | Driver::Asyncpg => (
            "python3",
            vec![
                format!("{drivers}/python_clients.py"),
                driver.name(),
                table.to_string(),
            ],
        ),
        Driver::PsycopgSystemLibpq => (
            "env",
            vec![
                "PSYCOPG_IMPL=python".to_string(),
                "python3".to_string(),
                format!("{drivers}/python_clients.py"),
                "psycopg".to_string(),
                table.to_string(),
            ],
        ),
        Driver::Jdbc { prepare_threshold } => (
            "java",
            vec![
                "-cp".to_string(),
                "/usr/share/java/postgresql.jar".to_string(),
                format!("{drivers}/JdbcClients.java"),
                format!(
                    "jdbc:postgresql://{addr}/app?sslmode=disable&prepareThreshold={prepare_threshold}"
                ),
                table.to_string(),
            ],
        ),
        // Debian's golang-go, golang-github-lib-pq-dev and golang-github-jackc-pgx-v4-dev,
        // in GOPATH mode.
        Driver::Go(go_driver) => (
            "env",
            vec![
                "GOPATH=/usr/share/gocode".to_string(),
                "GO111MODULE=off".to_string(),
                format!("GOCACHE={}", tools.go_cache.path().display()),
                "go".to_string(),
                "run".to_string(),
                format!("{drivers}/go_clients.go"),
                go_driver.to_string(),
                table.to_string(),
            ],
        ),
        Driver::DbdPg => (
            "perl",
            vec![format!("{drivers}/dbd_pg_clients.pl"), table.to_string()],
        ),
        Driver::PhpPdo => (
            "php",
            vec![format!("{drivers}/php_pdo_clients.php"), table.to_string()],
        ),
        Driver::RubyPg => (
            "ruby",
            vec![format!("{drivers}/ruby_pg_clients.rb"), table.to_string()],
        ),
        Driver::NodePg => (
            "env",
            vec![
                format!("NODE_PATH={}", tools.node_path),
                "node".to_string(),
                format!("{drivers}/node_pg_clients.js"),
                table.to_string(),
            ],
        ),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_tool(program, addr, &User::app(), &args, Duration::from_secs(300)).await?;
    let driver = driver.name();
    ensure!(
        output.status.success() && output.stdout.lines().any(|line| line == "ok"),
        "{driver} {label}: {}",
        output.describe()
    );
    let acknowledged = output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("acknowledged "))
        .context("no acknowledged line")?
        .parse()?;
    Ok(acknowledged)
}

/// Rows the concurrent clients wrote (ids from 1000) and all rows, read through `addr`.
async fn stored(addr: SocketAddr, table: &str) -> Result<(i64, i64)> {
    let client = connect(addr, &User::app()).await?;
    let written: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE id >= 1000"),
            &[],
        )
        .await?
        .get(0);
    let all: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0);
    Ok((written, all))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_on_one_shard() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = cluster.shard(0).primary();
    let proxy = TestProxy::start(
        primary,
        ProxyOptions {
            pool_mode: PoolMode::Transaction,
            pool_size: 3,
            ..ProxyOptions::default()
        },
    )
    .await?;
    let tools = Tools::prepare().await?;
    for driver in DRIVERS {
        let table = driver.table();
        let name = driver.name();
        for (label, addr) in [
            ("direct", primary.addr()),
            ("through pgshard", proxy.addr()),
        ] {
            let acknowledged = scenario(driver, addr, label, &tools).await?;
            let (written, all) = stored(primary.addr(), table).await?;
            ensure!(
                written == acknowledged && all == acknowledged + driver.fixed_rows(),
                "{name} {label}: {acknowledged} acknowledged, {written} stored ({all} rows)"
            );
            eprintln!("{name} on one shard, {label}: every check passed, {acknowledged} writes acknowledged and stored");
        }
    }
    proxy.shutdown().await;
    Ok(())
}

/// A proxy over both shards of `cluster` with the scenarios' tables sharded by `id`.
async fn sharded_proxy(cluster: &Cluster) -> Result<ProxyHandle> {
    let tables: Vec<(&str, &str)> = TABLES.iter().map(|table| (*table, "id")).collect();
    Ok(start_sharded_proxy(cluster, &tables, 3).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_on_two_shards() -> Result<()> {
    let cluster = Cluster::start(2, 0).await?;
    let proxy = sharded_proxy(&cluster).await?;
    let direct = cluster.shard(0).primary().addr();
    let tools = Tools::prepare().await?;
    for driver in DRIVERS {
        let table = driver.table();
        let name = driver.name();
        // The same scenario straight against one server first: what PostgreSQL answers.
        scenario(driver, direct, "direct", &tools).await?;
        let direct_client = connect(direct, &User::app()).await?;
        direct_client
            .batch_execute(&format!("DROP TABLE {table}"))
            .await?;
        let acknowledged = scenario(driver, proxy.addr, "through pgshard", &tools).await?;
        let (written, all) = stored(proxy.addr, table).await?;
        let mut per_shard = Vec::new();
        for shard in cluster.shards() {
            let (written, _) = stored(shard.primary().addr(), table).await?;
            per_shard.push(written);
        }
        ensure!(
            written == acknowledged
                && all == acknowledged + driver.fixed_rows()
                && per_shard.iter().sum::<i64>() == acknowledged
                && per_shard.iter().all(|&n| n > 0),
            "{name}: {acknowledged} acknowledged, {written} stored ({all} rows), per shard {per_shard:?}"
        );
        eprintln!(
            "{name} on two shards: every check passed, {acknowledged} writes acknowledged and stored ({per_shard:?} per shard)"
        );
    }
    proxy.shutdown().await;
    Ok(())
}
