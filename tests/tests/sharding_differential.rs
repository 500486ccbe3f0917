//! Sharding checked against a single PostgreSQL server: one schema and one generated
//! data set go straight into a plain server (the reference) and through the proxy into
//! clusters of two and of three shards. Every query then runs on both, over the simple
//! and the extended protocol, and the proxy must answer what the reference answers: the
//! same rows in the same order when the query orders them totally, the same rows in any
//! order otherwise, the same columns and the same command-tag counts.
//!
//! Besides: what the proxy cannot merge exactly is refused with 0A000 and the connection
//! goes on; every row sits on the shard PostgreSQL's hash partitioning picks for its key;
//! writes count and change what the reference's do; transactions across shards commit or
//! roll back on every shard; several statements in one query string, or Executes before
//! one Sync, form one implicit transaction as on the reference; and shard overrides reach
//! only the shard they name.
//!
//! Differences do not stop a run: they are gathered, and the test fails at the end with
//! all of them, each naming the statement and showing both answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use futures::{pin_mut, SinkExt};
use pgshard_proxy::ProxyHandle;
use pgshard_tests::answer::{self, Order, Outcome, SqlError};
use pgshard_tests::wire::{self, RawConnection};
use pgshard_tests::{connect, Cluster, User};
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// Users 1..=USERS are loaded; user `i` has `i % 4` orders.
const USERS: i64 = 600;

/// Rows per multi-row INSERT while loading.
const INSERT_BATCH: usize = 50;

/// COPY data goes in CopyData messages of this many bytes, cutting rows in two, as a
/// client streaming a file does.
const COPY_CHUNK: usize = 777;

/// How long one statement may take through the proxy before it counts as hung.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the proxy gets to end the shards' side of a statement whose client left.
const CLEANUP_GRACE: Duration = Duration::from_secs(2);

/// `date '2023-01-01'` as days after 2000-01-01.
const DAY_2023_01_01: i32 = 8401;

const REGIONS: [&str; 6] = ["north", "south", "east", "west", "central", "islands"];
const STATUSES: [&str; 4] = ["new", "paid", "shipped", "cancelled"];
/// The replicated table; users live in the first seven, nobody in the last.
const COUNTRIES: [(&str, &str); 8] = [
    ("at", "Austria"),
    ("br", "Brazil"),
    ("ca", "Canada"),
    ("de", "Germany"),
    ("fr", "France"),
    ("jp", "Japan"),
    ("ke", "Kenya"),
    ("us", "United States"),
];

const SCHEMA: [&str; 4] = [
    "CREATE TABLE users (id bigint PRIMARY KEY, name text, region text, score int, \
     balance numeric(12,2), active bool, created date, country text)",
    "CREATE TABLE orders (id bigint NOT NULL, user_id bigint NOT NULL, \
     amount numeric(10,2), status text, PRIMARY KEY (user_id, id))",
    "CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL)",
    "CREATE INDEX orders_status ON orders (status)",
];

/// Each cluster size starts a reference server and its shards; one size at a time keeps
/// the number of containers (and the load on the machine) low.
static ONE_SIZE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_answer_like_one_postgresql() -> Result<()> {
    differential(2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_answer_like_one_postgresql() -> Result<()> {
    differential(3).await
}

/// The whole comparison for a cluster of `shards` shards.
async fn differential(shards: usize) -> Result<()> {
    let _turn = ONE_SIZE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let (reference, cluster) = tokio::join!(Cluster::start(1, 0), Cluster::start(shards, 0));
    let (reference, cluster) = (reference?, cluster?);
    let proxy = start_proxy(&cluster).await?;
    let mut run = Run::new(&reference, proxy.addr, &cluster).await?;
    let nodes = shard_clients(&cluster).await?;

    load(&mut run).await?;
    check_placement(&mut run, &nodes).await?;
    compare_reads(&mut run, "after loading").await?;
    compare_result_columns(&mut run).await?;
    compare_prepared_reuse(&mut run).await?;
    check_refusals(&mut run, &nodes).await?;
    check_overrides(&mut run, &nodes).await?;
    compare_writes(&mut run).await?;
    compare_tables(&mut run, &nodes, "after the writes").await?;
    check_transactions(&mut run, &nodes).await?;
    compare_tables(&mut run, &nodes, "after the transactions").await?;
    compare_implicit_blocks(&mut run, &nodes).await?;

    let elapsed = started.elapsed();
    proxy.shutdown().await;
    run.finish(elapsed)
}

/// Starts the proxy in front of every shard's primary (through its relay), with `users`
/// and `orders` sharded and co-located by user id and `countries` replicated.
async fn start_proxy(cluster: &Cluster) -> Result<ProxyHandle> {
    let mut toml = String::from(
        r#"
[proxy]
listen = "127.0.0.1:0"
pool_size = 4
log_level = "warn"

[[users]]
name = "app"
password = "app"

[[databases]]
name = "app"
sharding_function = "hash"
replicated_tables = ["countries"]

[[databases.sharded_tables]]
table = "users"
column = "id"
type = "bigint"

[[databases.sharded_tables]]
table = "orders"
column = "user_id"
type = "bigint"
"#,
    );
    for shard in cluster.shards() {
        toml.push_str(&format!(
            "\n[[databases.shards]]\nprimary = \"{}\"\n",
            shard.primary().proxy_addr()
        ));
    }
    let config = pgshard_config::parse(&toml, "sharding_differential.toml")
        .map_err(|errors| anyhow::anyhow!("{errors}\n--- configuration ---\n{toml}"))?;
    Ok(pgshard_proxy::start(config).await?)
}

/// A direct connection to each shard's primary, by shard index, for looking behind the
/// proxy's back.
async fn shard_clients(cluster: &Cluster) -> Result<Vec<Client>> {
    let mut clients = Vec::new();
    for shard in cluster.shards() {
        clients.push(shard.primary().client(&User::app()).await?);
    }
    Ok(clients)
}

// ---------------------------------------------------------------------------------------
// Running statements on both sides
// ---------------------------------------------------------------------------------------

/// Which protocol a statement is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Simple,
    Extended,
}

/// A statement's parameter: bound over the extended protocol, written into the SQL as a
/// literal for the simple one.
#[derive(Clone, Debug)]
enum Param {
    Int(i32),
    Bigint(i64),
    Text(String),
    Bigints(Vec<i64>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Int(value) => value,
            Param::Bigint(value) => value,
            Param::Text(value) => value,
            Param::Bigints(value) => value,
        }
    }

    fn literal(&self) -> String {
        match self {
            Param::Int(value) => value.to_string(),
            Param::Bigint(value) => value.to_string(),
            Param::Text(value) => quote(value),
            Param::Bigints(values) => {
                let values: Vec<String> = values.iter().map(i64::to_string).collect();
                format!("ARRAY[{}]::bigint[]", values.join(", "))
            }
        }
    }
}

/// A statement to compare, how its rows are compared, and its parameters.
#[derive(Clone, Debug)]
struct Case {
    sql: String,
    order: Order,
    params: Vec<Param>,
}

/// A statement whose rows must come in the reference's order (it orders them totally).
fn exact(sql: &str) -> Case {
    Case {
        sql: sql.to_string(),
        order: Order::Exact,
        params: Vec::new(),
    }
}

/// A statement whose rows may come in any order.
fn any(sql: &str) -> Case {
    Case {
        order: Order::Any,
        ..exact(sql)
    }
}

impl Case {
    fn with(mut self, params: Vec<Param>) -> Case {
        self.params = params;
        self
    }

    /// The SQL sent with `protocol`: parameters inlined for the simple protocol.
    fn sql_for(&self, protocol: Protocol) -> String {
        match protocol {
            Protocol::Extended => self.sql.clone(),
            Protocol::Simple => inline(&self.sql, &self.params),
        }
    }
}

/// `sql` with `$n` replaced by the literal of parameter n, from the last one down so that
/// `$1` does not eat the start of `$12`.
fn inline(sql: &str, params: &[Param]) -> String {
    let mut sql = sql.to_string();
    for (index, param) in params.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", index + 1), &param.literal());
    }
    sql
}

/// Runs `case` on `client` with `protocol`.
async fn outcome(client: &Client, case: &Case, protocol: Protocol) -> Outcome {
    match protocol {
        Protocol::Simple => answer::simple_query(client, &case.sql_for(protocol)).await,
        Protocol::Extended => {
            let params: Vec<&(dyn ToSql + Sync)> = case.params.iter().map(Param::as_sql).collect();
            answer::extended_query(client, &case.sql, &params).await
        }
    }
}

/// The reference and the proxy side by side, and the differences found so far.
struct Run {
    reference: Client,
    reference_addr: SocketAddr,
    proxy: Client,
    proxy_addr: SocketAddr,
    /// Where the shards' primaries are reached directly.
    shard_addrs: Vec<SocketAddr>,
    shards: usize,
    checks: usize,
    differences: Vec<String>,
}

impl Run {
    async fn new(reference: &Cluster, proxy_addr: SocketAddr, cluster: &Cluster) -> Result<Run> {
        let reference_node = reference.shard(0).primary();
        let shard_addrs: Vec<SocketAddr> = cluster
            .shards()
            .iter()
            .map(|s| s.primary().addr())
            .collect();
        Ok(Run {
            reference: reference_node.client(&User::app()).await?,
            reference_addr: reference_node.addr(),
            proxy: connect_to_proxy(proxy_addr).await?,
            proxy_addr,
            shards: shard_addrs.len(),
            shard_addrs,
            checks: 0,
            differences: Vec::new(),
        })
    }

    /// Counts a check, and records `difference` when there is one.
    fn check(&mut self, what: impl FnOnce() -> String, difference: Option<String>) {
        self.checks += 1;
        if let Some(difference) = difference {
            self.differences.push(format!("{}: {difference}", what()));
        }
    }

    /// Records a failed expectation about the proxy.
    fn expect(&mut self, holds: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !holds {
            self.differences.push(what());
        }
    }

    /// Runs `case` through the proxy, giving up after [`STATEMENT_TIMEOUT`]. After a hang
    /// or a lost connection the next statements get a new connection (the failure is in
    /// the outcome); a proxy that takes no new connection ends the run.
    async fn on_proxy(&mut self, case: &Case, protocol: Protocol) -> Result<Outcome> {
        let result =
            tokio::time::timeout(STATEMENT_TIMEOUT, outcome(&self.proxy, case, protocol)).await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(_) => Err(SqlError::other(format!(
                "no answer within {STATEMENT_TIMEOUT:?} (hung)"
            ))),
        };
        if result_is_hang_or_loss(&outcome) || self.proxy.is_closed() {
            self.recover(&case.sql).await?;
        }
        Ok(outcome)
    }

    /// After the proxy hung or lost the connection during `what`: drops that connection
    /// for a new one, then ends (and records) whatever the proxy left running on the
    /// shards once its client was gone, so that held locks do not stall the rest.
    async fn recover(&mut self, what: &str) -> Result<()> {
        self.proxy = connect_to_proxy(self.proxy_addr)
            .await
            .with_context(|| format!("after {what}"))?;
        tokio::time::sleep(CLEANUP_GRACE).await;
        for (index, addr) in self.shard_addrs.clone().into_iter().enumerate() {
            let left = end_leftover_statements(addr).await?;
            self.expect(left.is_empty(), || {
                format!(
                    "after {what} hung or failed and its client left, shard {index} still ran \
                     {left:?} (ended by the test)"
                )
            });
        }
        Ok(())
    }

    /// Runs `case` on the reference, where it must succeed unless `may_fail`: the
    /// reference is the truth, so an error there is the test's mistake.
    async fn on_reference(&self, case: &Case, protocol: Protocol) -> Result<Outcome> {
        let outcome = outcome(&self.reference, case, protocol).await;
        if let Err(error) = &outcome {
            if error.code.is_none() {
                bail!("the reference failed on {}: {}", case.sql, error.message);
            }
        }
        Ok(outcome)
    }

    /// Runs `case` on both sides with `protocol` and records any difference.
    async fn compare(&mut self, case: &Case, protocol: Protocol) -> Result<()> {
        let reference = self.on_reference(case, protocol).await?;
        let proxy = self.on_proxy(case, protocol).await?;
        let difference = answer::difference(case.order, &proxy, &reference);
        self.check(|| describe(case, protocol), difference);
        Ok(())
    }

    /// Runs `case` on both sides with both protocols.
    async fn compare_both(&mut self, case: &Case) -> Result<()> {
        self.compare(case, Protocol::Simple).await?;
        self.compare(case, Protocol::Extended).await
    }

    /// Ends the run: fails with every difference found, or reports how long it took.
    fn finish(self, elapsed: Duration) -> Result<()> {
        eprintln!(
            "{} shards: {} checks, {} differences, {:.1}s",
            self.shards,
            self.checks,
            self.differences.len(),
            elapsed.as_secs_f64()
        );
        ensure!(
            self.differences.is_empty(),
            "{} of {} checks went wrong through the proxy with {} shards:\n\n{}",
            self.differences.len(),
            self.checks,
            self.shards,
            self.differences.join("\n\n")
        );
        Ok(())
    }
}

/// A new client connection to the proxy; logging in may take no longer than a
/// statement.
async fn connect_to_proxy(addr: SocketAddr) -> Result<Client> {
    tokio::time::timeout(STATEMENT_TIMEOUT, connect(addr, &User::app()))
        .await
        .map_err(|_| anyhow::anyhow!("the proxy completes no login within {STATEMENT_TIMEOUT:?}"))?
        .context("connecting to the proxy")
}

/// Terminates the sessions on the server at `addr` that run a statement or hold a
/// transaction open (none should, between the test's statements; the proxy's health
/// checks aside) and returns what they ran.
async fn end_leftover_statements(addr: SocketAddr) -> Result<Vec<String>> {
    let client = connect(addr, &User::app()).await?;
    let rows = client
        .query(
            "SELECT state || ': ' || left(query, 80), pg_terminate_backend(pid) \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' AND state <> 'idle' \
             AND application_name <> 'pgshard control'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Whether an outcome says the proxy hung or the connection broke (no SQLSTATE, and not
/// a value that failed to decode).
fn result_is_hang_or_loss(outcome: &Outcome) -> bool {
    matches!(outcome, Err(error) if error.code.is_none() && !error.message.contains("deserializ"))
}

/// How a statement is named in a failure.
fn describe(case: &Case, protocol: Protocol) -> String {
    let mut text = format!("[{protocol:?}] {}", case.sql_for(protocol));
    if protocol == Protocol::Extended && !case.params.is_empty() {
        text.push_str(&format!("  params {:?}", case.params));
    }
    text
}

// ---------------------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------------------

/// One generated `users` row; every column is a function of the id.
struct UserRow {
    id: i64,
    name: String,
    region: Option<&'static str>,
    score: Option<i32>,
    balance: String,
    active: bool,
    created: String,
    country: &'static str,
}

/// The user with id `i`: a few names need quoting or escaping in SQL, COPY text and CSV;
/// one region in seven and one score in eleven is NULL.
fn user(i: i64) -> UserRow {
    let name = if i % 50 == 0 {
        format!("O'Brien, \"Jr\" {i}")
    } else if i % 45 == 0 {
        format!("back\\slash {i}")
    } else if i % 70 == 0 {
        format!("tab\there {i}")
    } else if i % 60 == 0 {
        format!("Zoë {i}")
    } else {
        format!("user{i:04}")
    };
    UserRow {
        id: i,
        name,
        region: (i % 7 != 6).then(|| REGIONS[(i % 7) as usize]),
        score: (i % 11 != 0).then(|| ((i * 37) % 101 - 20) as i32),
        balance: cents((i * 7919) % 100_000 - 20_000),
        active: i % 3 != 0,
        created: answer::date_text(DAY_2023_01_01 + ((i * 13) % 365) as i32),
        country: COUNTRIES[(i / 3 % 7) as usize].0,
    }
}

/// One generated `orders` row.
struct OrderRow {
    id: i64,
    user_id: i64,
    amount: String,
    status: &'static str,
}

/// The orders of user `user_id`: `user_id % 4` of them.
fn orders_of(user_id: i64) -> impl Iterator<Item = OrderRow> {
    (0..user_id % 4).map(move |j| OrderRow {
        id: user_id * 10 + j,
        user_id,
        amount: cents(((user_id * 7 + j * 13) * 97) % 250_000 + 50),
        status: STATUSES[((user_id + j) % 4) as usize],
    })
}

/// A number of cents as a decimal with two places.
fn cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQL literal for an optional value.
fn or_null<T: ToString>(value: Option<T>) -> String {
    value.map_or("NULL".to_string(), |v| v.to_string())
}

impl UserRow {
    /// The row as a VALUES tuple.
    fn values(&self) -> String {
        format!(
            "({}, {}, {}, {}, {}, {}, {}, {})",
            self.id,
            quote(&self.name),
            or_null(self.region.map(quote)),
            or_null(self.score),
            self.balance,
            self.active,
            quote(&self.created),
            quote(self.country)
        )
    }

    /// The row's fields, `None` for NULL, in column order.
    fn fields(&self) -> Vec<Option<String>> {
        vec![
            Some(self.id.to_string()),
            Some(self.name.clone()),
            self.region.map(str::to_string),
            self.score.map(|s| s.to_string()),
            Some(self.balance.clone()),
            Some(self.active.to_string()),
            Some(self.created.clone()),
            Some(self.country.to_string()),
        ]
    }
}

impl OrderRow {
    fn values(&self) -> String {
        format!(
            "({}, {}, {}, {})",
            self.id,
            self.user_id,
            self.amount,
            quote(self.status)
        )
    }

    fn fields(&self) -> Vec<Option<String>> {
        vec![
            Some(self.id.to_string()),
            Some(self.user_id.to_string()),
            Some(self.amount.clone()),
            Some(self.status.to_string()),
        ]
    }
}

/// A line of COPY's text format.
fn copy_text_line(fields: &[Option<String>]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|field| match field {
            None => "\\N".to_string(),
            Some(text) => text
                .replace('\\', "\\\\")
                .replace('\t', "\\t")
                .replace('\n', "\\n")
                .replace('\r', "\\r"),
        })
        .collect();
    fields.join("\t") + "\n"
}

/// A line of COPY's CSV format: NULL unquoted and empty, quotes where needed.
fn csv_line(fields: &[Option<String>]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|field| match field {
            None => String::new(),
            Some(text) if text.contains([',', '"', '\n', '\r']) || text.is_empty() => {
                format!("\"{}\"", text.replace('"', "\"\""))
            }
            Some(text) => text.clone(),
        })
        .collect();
    fields.join(",") + "\n"
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// How a chunk of rows is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// Multi-row INSERTs with literals, over the simple protocol.
    Insert,
    /// Multi-row INSERTs with bound parameters.
    InsertBound,
    /// COPY FROM STDIN in text format or in CSV with a header line; over the extended
    /// protocol as tokio-postgres sends it (Bind, Execute, Sync, CopyData…, CopyDone,
    /// Sync), or over the simple protocol as psql does.
    Copy(CopyFormat, Protocol),
    /// Like `Insert`, skipping rows already there: after a failed load step.
    Refill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyFormat {
    Text,
    Csv,
}

/// Which table a load step fills, and for which users.
#[derive(Clone, Debug)]
enum Rows {
    Users(RangeInclusive<i64>),
    Orders(RangeInclusive<i64>),
}

/// How the data set is loaded: every way of writing rows, for both sharded tables.
fn load_plan() -> Vec<(Rows, Load)> {
    use CopyFormat::{Csv, Text};
    use Protocol::{Extended, Simple};
    vec![
        (Rows::Users(1..=150), Load::Insert),
        (Rows::Users(151..=300), Load::InsertBound),
        (Rows::Users(301..=375), Load::Copy(Text, Extended)),
        (Rows::Users(376..=450), Load::Copy(Text, Simple)),
        (Rows::Users(451..=525), Load::Copy(Csv, Extended)),
        (Rows::Users(526..=USERS), Load::Copy(Csv, Simple)),
        (Rows::Orders(1..=200), Load::Insert),
        (Rows::Orders(201..=300), Load::InsertBound),
        (Rows::Orders(301..=375), Load::Copy(Csv, Simple)),
        (Rows::Orders(376..=450), Load::Copy(Csv, Extended)),
        (Rows::Orders(451..=525), Load::Copy(Text, Simple)),
        (Rows::Orders(526..=USERS), Load::Copy(Text, Extended)),
    ]
}

/// Creates the schema and loads the data set on the reference directly and through the
/// proxy, the same statements on both. A step that fails through the proxy is recorded
/// and its rows are loaded again with plain INSERTs, so the queries still have data.
async fn load(run: &mut Run) -> Result<()> {
    for ddl in SCHEMA {
        let case = exact(ddl);
        let protocol = if ddl.starts_with("CREATE INDEX") {
            Protocol::Extended
        } else {
            Protocol::Simple
        };
        let reference = run.on_reference(&case, protocol).await?;
        ensure!(reference.is_ok(), "{ddl}: {}", answer::summary(&reference));
        run.compare_outcome(&case, protocol, reference).await?;
    }
    for (rows, how) in load_plan() {
        let expected = write_rows(&run.reference, run.reference_addr, &rows, how)
            .await
            .with_context(|| format!("loading {rows:?} by {how:?} into the reference"))?;
        let through_proxy = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            write_rows(&run.proxy, run.proxy_addr, &rows, how),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {STATEMENT_TIMEOUT:?}")));
        match through_proxy {
            Ok(count) => run.expect(count == expected, || {
                format!(
                    "loading {rows:?} by {how:?}: the proxy counted {count} rows, not {expected}"
                )
            }),
            Err(error) => {
                run.expect(false, || format!("loading {rows:?} by {how:?}: {error:#}"));
                let what = format!("loading {rows:?} by {how:?}");
                run.recover(&what).await?;
                tokio::time::timeout(
                    STATEMENT_TIMEOUT,
                    write_rows(&run.proxy, run.proxy_addr, &rows, Load::Refill),
                )
                .await
                .map_err(|_| anyhow::anyhow!("hung"))
                .and_then(|written| written)
                .with_context(|| format!("loading {rows:?} again with INSERTs"))?;
            }
        }
    }
    let countries: Vec<String> = COUNTRIES
        .iter()
        .map(|(code, name)| format!("({}, {})", quote(code), quote(name)))
        .collect();
    let insert = exact(&format!(
        "INSERT INTO countries (code, name) VALUES {}",
        countries.join(", ")
    ));
    let reference = run.on_reference(&insert, Protocol::Simple).await?;
    run.compare_outcome(&insert, Protocol::Simple, reference)
        .await
}

impl Run {
    /// Runs `case` through the proxy and compares with the reference's `reference`
    /// outcome, for statements that must run once per side.
    async fn compare_outcome(
        &mut self,
        case: &Case,
        protocol: Protocol,
        reference: Outcome,
    ) -> Result<()> {
        let proxy = self.on_proxy(case, protocol).await?;
        let difference = answer::difference(case.order, &proxy, &reference);
        self.check(|| describe(case, protocol), difference);
        Ok(())
    }
}

/// Writes `rows` into the database of `client` (connected to `addr`) the `how` way;
/// returns the rows the server said it wrote.
async fn write_rows(client: &Client, addr: SocketAddr, rows: &Rows, how: Load) -> Result<u64> {
    let (table, columns, records) = match rows {
        Rows::Users(ids) => (
            "users",
            "id, name, region, score, balance, active, created, country",
            ids.clone()
                .map(user)
                .map(|u| (u.values(), u.fields()))
                .collect(),
        ),
        Rows::Orders(ids) => (
            "orders",
            "id, user_id, amount, status",
            ids.clone()
                .flat_map(orders_of)
                .map(|o| (o.values(), o.fields()))
                .collect::<Vec<_>>(),
        ),
    };
    match how {
        Load::Insert => insert_literals(client, table, columns, &records, "").await,
        Load::Refill => {
            insert_literals(client, table, columns, &records, " ON CONFLICT DO NOTHING").await
        }
        Load::InsertBound => insert_bound(client, rows).await,
        Load::Copy(format, protocol) => {
            let (copy, data) = match format {
                CopyFormat::Text => (
                    // A line break before FROM, as people write it: the plan, not the
                    // spacing of the text, says what the statement is.
                    format!("COPY {table} ({columns})\nFROM STDIN"),
                    records.iter().map(|(_, f)| copy_text_line(f)).collect(),
                ),
                CopyFormat::Csv => {
                    let mut data = format!("{columns}\n").replace(", ", ",");
                    data.extend(records.iter().map(|(_, f)| csv_line(f)));
                    let copy =
                        format!("COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true)");
                    (copy, data)
                }
            };
            match protocol {
                Protocol::Extended => copy_in(client, &copy, data).await,
                Protocol::Simple => copy_in_simple(addr, &copy, data).await,
            }
        }
    }
}

/// Multi-row INSERTs of VALUES tuples, [`INSERT_BATCH`] rows each, simple protocol;
/// `suffix` follows the VALUES.
async fn insert_literals(
    client: &Client,
    table: &str,
    columns: &str,
    records: &[(String, Vec<Option<String>>)],
    suffix: &str,
) -> Result<u64> {
    let mut written = 0;
    for batch in records.chunks(INSERT_BATCH) {
        let values: Vec<&str> = batch.iter().map(|(v, _)| v.as_str()).collect();
        let sql = format!(
            "INSERT INTO {table} ({columns}) VALUES {}{suffix}",
            values.join(", ")
        );
        let outcome = answer::simple_query(client, &sql).await;
        written += outcome
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code.unwrap_or_default(), e.message))?
            .count
            .unwrap_or(0);
    }
    Ok(written)
}

/// Multi-row INSERTs with every value bound as a parameter, [`INSERT_BATCH`] rows each.
/// Numeric and date values go as text and are cast, since the driver has no such types.
async fn insert_bound(client: &Client, rows: &Rows) -> Result<u64> {
    let mut written = 0;
    match rows {
        Rows::Users(ids) => {
            let users: Vec<UserRow> = ids.clone().map(user).collect();
            for batch in users.chunks(INSERT_BATCH) {
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
                let mut tuples = Vec::new();
                for u in batch {
                    let n = params.len();
                    tuples.push(format!(
                        "(${}, ${}, ${}, ${}, ${}::text::numeric, ${}, ${}::text::date, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6,
                        n + 7,
                        n + 8
                    ));
                    params.extend([
                        &u.id as &(dyn ToSql + Sync),
                        &u.name,
                        &u.region,
                        &u.score,
                        &u.balance,
                        &u.active,
                        &u.created,
                        &u.country,
                    ]);
                }
                let sql = format!(
                    "INSERT INTO users (id, name, region, score, balance, active, created, country) \
                     VALUES {}",
                    tuples.join(", ")
                );
                written += client.execute(&sql, &params).await?;
            }
        }
        Rows::Orders(ids) => {
            let orders: Vec<OrderRow> = ids.clone().flat_map(orders_of).collect();
            for batch in orders.chunks(INSERT_BATCH) {
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
                let mut tuples = Vec::new();
                for o in batch {
                    let n = params.len();
                    tuples.push(format!(
                        "(${}, ${}, ${}::text::numeric, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4
                    ));
                    params.extend([
                        &o.id as &(dyn ToSql + Sync),
                        &o.user_id,
                        &o.amount,
                        &o.status,
                    ]);
                }
                let sql = format!(
                    "INSERT INTO orders (id, user_id, amount, status) VALUES {}",
                    tuples.join(", ")
                );
                written += client.execute(&sql, &params).await?;
            }
        }
    }
    Ok(written)
}

/// Runs a COPY FROM STDIN with `data` through tokio-postgres (extended protocol), sent in
/// [`COPY_CHUNK`]-byte pieces; returns the rows the server counted.
async fn copy_in(client: &Client, statement: &str, data: String) -> Result<u64> {
    let sink = client.copy_in::<_, Bytes>(statement).await?;
    pin_mut!(sink);
    for chunk in data.as_bytes().chunks(COPY_CHUNK) {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    Ok(sink.finish().await?)
}

/// Runs a COPY FROM STDIN with `data` as a simple Query on a connection of its own to
/// `addr`, as psql does, sent in [`COPY_CHUNK`]-byte pieces; returns the rows the
/// server counted.
async fn copy_in_simple(addr: SocketAddr, statement: &str, data: String) -> Result<u64> {
    let (mut raw, _) = RawConnection::login(addr, &User::app()).await?;
    raw.send_bytes(&wire::query(statement)).await?;
    let start = raw.expect_message().await?;
    ensure!(
        start.tag == b'G',
        "{statement}: answered {} {:?} instead of CopyInResponse",
        start.kind(),
        start.sqlstate()
    );
    for chunk in data.as_bytes().chunks(COPY_CHUNK) {
        raw.send_bytes(&wire::message(b'd', chunk)).await?;
    }
    raw.send_bytes(&wire::message(b'c', &[])).await?;
    let replies = raw.read_until_ready().await?;
    if let Some(error) = replies.iter().find(|m| m.tag == b'E') {
        bail!(
            "{statement}: error {:?} {:?}",
            error.sqlstate(),
            error.field(b'M')
        );
    }
    let tag = replies
        .iter()
        .find(|m| m.tag == b'C')
        .map(|m| command_tag(&m.body))
        .with_context(|| format!("{statement}: no CommandComplete"))?;
    tag.strip_prefix("COPY ")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{statement}: tag {tag}"))
}

// ---------------------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------------------

/// Checks, on the shards directly, that every user is on exactly the shard whose index is
/// the remainder PostgreSQL's `PARTITION BY HASH (id)` with `MODULUS shards` gives its id,
/// that every order is on its user's shard, and that every shard has all countries.
async fn check_placement(run: &mut Run, nodes: &[Client]) -> Result<()> {
    let holders = users_by_shard(nodes).await?;
    let partitions = hash_partitions(&run.reference, nodes.len()).await?;
    let mut misplaced = Vec::new();
    for (id, remainder) in &partitions {
        match holders.get(id).map(Vec::as_slice) {
            Some([shard]) if shard == remainder => {}
            other => misplaced.push(format!("{id}: on shards {other:?}, partition {remainder}")),
        }
    }
    let stray: Vec<&i64> = holders
        .keys()
        .filter(|id| !partitions.contains_key(id))
        .collect();
    let per_shard: Vec<usize> = (0..nodes.len())
        .map(|s| holders.values().filter(|h| h.contains(&s)).count())
        .collect();
    run.expect(misplaced.is_empty() && stray.is_empty(), || {
        format!(
            "placement: {} of {} users not on exactly their hash partition's shard, e.g. {:?}; \
             {} ids on the shards that the reference does not have; users per shard {per_shard:?}",
            misplaced.len(),
            partitions.len(),
            &misplaced[..misplaced.len().min(5)],
            stray.len()
        )
    });

    for (index, node) in nodes.iter().enumerate() {
        let orphans: i64 = node
            .query_one(
                "SELECT count(*) FROM orders o WHERE NOT EXISTS \
                 (SELECT 1 FROM users u WHERE u.id = o.user_id)",
                &[],
            )
            .await?
            .get(0);
        run.expect(orphans == 0, || {
            format!("placement: shard {index} holds {orphans} orders whose user is elsewhere")
        });
    }
    compare_countries_on_every_shard(run, nodes, "after loading").await
}

/// Every user id on the shards, with the shards that hold it (one, if all is well).
async fn users_by_shard(nodes: &[Client]) -> Result<BTreeMap<i64, Vec<usize>>> {
    let mut holders: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (index, node) in nodes.iter().enumerate() {
        for row in node.query("SELECT id FROM users", &[]).await? {
            holders.entry(row.get(0)).or_default().push(index);
        }
    }
    Ok(holders)
}

/// The hash-partition remainder of every user id of the reference, found by putting the
/// ids into a table `PARTITION BY HASH (id)` with `modulus` partitions and reading each
/// row's `tableoid`.
async fn hash_partitions(reference: &Client, modulus: usize) -> Result<BTreeMap<i64, usize>> {
    let mut ddl = String::from(
        "DROP TABLE IF EXISTS placement; \
         CREATE TABLE placement (id bigint) PARTITION BY HASH (id);",
    );
    for remainder in 0..modulus {
        ddl.push_str(&format!(
            "CREATE TABLE placement_p{remainder} PARTITION OF placement \
             FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder});"
        ));
    }
    ddl.push_str("INSERT INTO placement SELECT id FROM users;");
    reference.batch_execute(&ddl).await?;
    let rows = reference
        .query("SELECT id, tableoid::regclass::text FROM placement", &[])
        .await?;
    let mut partitions = BTreeMap::new();
    for row in rows {
        let partition: String = row.get(1);
        let remainder = partition
            .rsplit_once("_p")
            .and_then(|(_, r)| r.parse::<usize>().ok())
            .with_context(|| format!("unexpected partition {partition}"))?;
        partitions.insert(row.get::<_, i64>(0), remainder);
    }
    reference.batch_execute("DROP TABLE placement").await?;
    Ok(partitions)
}

/// Checks that every shard holds the reference's `countries` in full.
async fn compare_countries_on_every_shard(
    run: &mut Run,
    nodes: &[Client],
    when: &str,
) -> Result<()> {
    let case = exact("SELECT code, name FROM countries ORDER BY code");
    let reference = run.on_reference(&case, Protocol::Simple).await?;
    for (index, node) in nodes.iter().enumerate() {
        let on_shard = answer::simple_query(node, &case.sql).await;
        let difference = answer::difference(Order::Exact, &on_shard, &reference);
        run.check(
            || format!("replicated table on shard {index} {when} (shard vs reference)"),
            difference,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------

/// The queries compared, over both protocols.
fn read_cases() -> Vec<Case> {
    use Param::{Bigint, Bigints, Int, Text};
    let all_users = "SELECT id, name, region, score, balance, active, created, country FROM users";
    vec![
        // Point lookups by key.
        exact("SELECT id, name, region, score, balance, active, created, country FROM users WHERE id = 42"),
        exact("SELECT * FROM users WHERE id = $1").with(vec![Bigint(137)]),
        exact("SELECT name, balance FROM users WHERE id = CAST('77' AS bigint)"),
        exact("SELECT name, created FROM users WHERE id = 78::bigint"),
        exact("SELECT id, name FROM users WHERE id IN (3, 250, 401, 599) ORDER BY id"),
        exact("SELECT id, score FROM users WHERE id = 5 OR id = 305 ORDER BY id"),
        exact("SELECT u.name, u.balance FROM users u WHERE u.id = 12"),
        exact("SELECT users.name FROM users WHERE users.id = 13"),
        exact("SELECT * FROM users WHERE id = 100000"),
        exact("SELECT id, amount, status FROM orders WHERE user_id = $1 ORDER BY id")
            .with(vec![Bigint(123)]),
        exact("SELECT id FROM users WHERE id = ANY($1) ORDER BY id")
            .with(vec![Bigints(vec![10, 20, 30, 444, 555])]),
        exact("SELECT name FROM users WHERE id = $1 AND active").with(vec![Bigint(301)]),
        exact("SELECT id, balance, created, active, score FROM users WHERE id BETWEEN 1 AND 12 ORDER BY id"),
        exact("SELECT name FROM users WHERE id = 42::int"),
        exact("SELECT name FROM users WHERE id = '43'"),
        exact("SELECT name FROM users WHERE id = $1::int").with(vec![Int(44)]),
        exact("SELECT ID, NAME FROM USERS WHERE ID = 45"),
        exact("SELECT name FROM public.users WHERE id = 46"),
        exact("SELECT name FROM \"users\" WHERE \"id\" = 47"),
        exact("SELECT id FROM users WHERE id = 42 AND id = 43"),
        exact("SELECT id FROM users WHERE id = 42 OR name = 'user0100' ORDER BY id"),
        exact("SELECT id FROM users WHERE NOT (id = 42) AND id < 50 ORDER BY id"),
        exact("SELECT id FROM users WHERE id <> 3 AND id < 10 ORDER BY id"),
        exact("WITH u AS (SELECT * FROM users WHERE id = 9) SELECT name, score FROM u"),
        // Scans of every shard.
        any(all_users),
        any("SELECT * FROM orders"),
        any("SELECT id, name FROM users WHERE region = 'north'"),
        any("SELECT id FROM users WHERE score > 50 AND active"),
        any("SELECT id, balance FROM users WHERE balance < $1::text::numeric")
            .with(vec![Text("-100.50".to_string())]),
        any("SELECT id FROM users WHERE region IS NULL"),
        any("SELECT id, name FROM users WHERE name LIKE $1").with(vec![Text("user01%".to_string())]),
        any("SELECT id, user_id FROM orders WHERE status = $1").with(vec![Text("paid".to_string())]),
        // Aggregates.
        exact("SELECT count(*) FROM users"),
        exact("SELECT count(*), count(region), count(score) FROM users"),
        exact("SELECT sum(score), min(score), max(score) FROM users"),
        exact("SELECT sum(id), min(id), max(id), avg(id) FROM users"),
        exact("SELECT sum(balance), min(balance), max(balance), avg(balance) FROM users"),
        exact("SELECT avg(score) FROM users"),
        exact("SELECT sum(amount), count(*), avg(amount) FROM orders"),
        exact("SELECT min(name), max(name) FROM users"),
        exact("SELECT min(created), max(created) FROM users"),
        exact("SELECT bool_and(active), bool_or(active), bool_and(score > -30) FROM users"),
        exact("SELECT count(*) FROM users WHERE false"),
        exact("SELECT sum(score), max(name), avg(balance), count(*), bool_or(active) FROM users WHERE false"),
        exact("SELECT count(*), sum(amount) FROM orders WHERE user_id = 77"),
        exact("SELECT count(*) FROM users WHERE score > $1").with(vec![Int(40)]),
        exact("SELECT count(*) FILTER (WHERE active), sum(score) FILTER (WHERE region = 'east') FROM users"),
        exact("SELECT count(*) FROM public.users"),
        // GROUP BY and HAVING.
        exact("SELECT region, count(*), sum(score), avg(balance) FROM users GROUP BY region ORDER BY region NULLS FIRST"),
        any("SELECT region, count(*) FROM users GROUP BY region"),
        exact("SELECT active, region, count(*), min(score), max(score) FROM users GROUP BY active, region ORDER BY active, region"),
        exact("SELECT region, count(*) AS n FROM users GROUP BY region HAVING count(*) > 85 ORDER BY region"),
        exact("SELECT region, sum(balance) FROM users GROUP BY region HAVING sum(balance) > 0 ORDER BY 2 DESC, 1"),
        exact("SELECT status, count(*), sum(amount), avg(amount), min(amount), max(amount) FROM orders GROUP BY status ORDER BY status"),
        exact("SELECT user_id, count(*) FROM orders GROUP BY user_id HAVING count(*) = 3 ORDER BY user_id LIMIT 10"),
        exact("SELECT created, count(*) FROM users GROUP BY created ORDER BY count(*) DESC, created LIMIT 5"),
        exact("SELECT region FROM users GROUP BY region HAVING max(score) > 70 ORDER BY region"),
        exact("SELECT country, count(*) FROM users GROUP BY 1 ORDER BY 1"),
        exact("SELECT region FROM users GROUP BY region ORDER BY sum(score) DESC, region"),
        exact("SELECT region, count(*) FROM users GROUP BY region ORDER BY 2 DESC, 1 NULLS FIRST LIMIT 3"),
        // Groups streamed in key order, the window applied as they go.
        exact("SELECT user_id, count(*), sum(amount) FROM orders GROUP BY user_id ORDER BY user_id DESC LIMIT 10 OFFSET 5"),
        exact("SELECT region, created, count(*) FROM users GROUP BY created, region ORDER BY created DESC, region NULLS FIRST LIMIT 20"),
        exact("SELECT count(*) FROM orders GROUP BY user_id ORDER BY user_id"),
        exact("SELECT DISTINCT active, region FROM users ORDER BY region DESC NULLS LAST, active"),
        // Groups sorted by an aggregate, only as many kept as the window reaches.
        exact("SELECT user_id, sum(amount) FROM orders GROUP BY user_id ORDER BY sum(amount) DESC, user_id LIMIT 7 OFFSET 3"),
        exact("SELECT region, count(*) FROM users WHERE score >= $1 GROUP BY region ORDER BY region")
            .with(vec![Int(10)]),
        exact("SELECT region, avg(score) FROM users GROUP BY region ORDER BY 2 DESC, region NULLS FIRST"),
        exact("SELECT region FROM users GROUP BY region HAVING avg(score) > 40 ORDER BY region"),
        exact("SELECT avg(score) FROM users HAVING count(score) > 500"),
        // Casts and COALESCE around aggregates, applied after merging.
        exact("SELECT count(*)::int FROM users"),
        exact("SELECT CAST(count(*) AS integer), count(*)::int2, count(id)::bigint AS n FROM users"),
        exact("SELECT region, count(*)::int FROM users GROUP BY region ORDER BY region NULLS FIRST"),
        exact("SELECT region, CAST(count(*) AS bigint) AS n FROM users GROUP BY region ORDER BY n DESC, region NULLS FIRST"),
        exact("SELECT status, count(*)::int AS n FROM orders GROUP BY status ORDER BY count(*)::int, status"),
        exact("SELECT sum(score)::text, sum(balance)::text, max(name)::varchar, bool_and(active)::text, max(created)::text FROM users"),
        exact("SELECT region, sum(score)::text AS total FROM users GROUP BY region ORDER BY total, region NULLS FIRST"),
        exact("SELECT COALESCE(sum(amount), 0), COALESCE(count(*), 0), COALESCE(max(status), 'none'), COALESCE(bool_or(amount > 0), false) FROM orders WHERE status = 'lost'"),
        exact("SELECT COALESCE(sum(score), 0)::int, COALESCE(sum(balance), 0.00) AS b, COALESCE(avg(score), -1) FROM users WHERE region = 'nowhere'"),
        exact("SELECT COALESCE(sum(amount), 0) FROM orders WHERE status = $1").with(vec![Text("paid".to_string())]),
        exact("SELECT avg(score)::numeric(10,2), avg(balance)::numeric, CAST(avg(id) AS numeric(12,4)), avg(balance)::numeric(8,-2) FROM users"),
        exact("SELECT status, avg(amount)::numeric(10,2) AS mean, avg(amount)::int, sum(amount)::float8 FROM orders GROUP BY status ORDER BY mean DESC, status"),
        exact("SELECT region, count(*)::int AS n FROM users GROUP BY region HAVING count(*) > 85 ORDER BY n, region NULLS FIRST"),
        exact("SELECT region, max(score)::int2, avg(score)::float8, sum(score)::real, avg(score)::int FROM users GROUP BY region ORDER BY 1 NULLS FIRST"),
        exact("SELECT country, sum(balance)::int8, min(balance)::int FROM users GROUP BY country ORDER BY sum(balance)::int8 DESC, country"),
        exact("SELECT region FROM users GROUP BY region ORDER BY COALESCE(sum(score), 0) DESC, region NULLS FIRST"),
        exact("SELECT sum(score::float8 / 4)::numeric(10,1), avg(score::real)::int, sum(score::real / 8)::float8, sum(score::float8 / 4)::real FROM users"),
        exact("SELECT min(name)::varchar(4), count(*)::varchar(2), bool_or(active)::int FROM users"),
        exact("SELECT active, COALESCE(sum(score), 0)::text FROM users GROUP BY active ORDER BY active"),
        // Arithmetic and numeric functions over aggregates and group keys, computed
        // after merging with PostgreSQL's operators, types and scales.
        exact("SELECT sum(score) / count(*), sum(balance) / sum(score), sum(score) % 7, count(*) * 2 - 1 FROM users"),
        exact("SELECT region, 100.0 * sum(score) / sum(score + 1) AS pct, round(avg(balance), 2), -sum(score), max(score) - min(score) AS spread FROM users GROUP BY region ORDER BY pct DESC NULLS LAST, region NULLS FIRST"),
        exact("SELECT sum(score)::float8 / count(*), avg(score::real) * 3, sum(score::real) / 7::real, sum(score::real) + 0.5 FROM users"),
        exact("SELECT round(avg(score)), trunc(avg(balance), 1), abs(min(balance) - 1000), ceil(avg(score)), floor(avg(score::float8)), round(sum(score)::numeric, -2), abs(-count(*)) FROM users"),
        exact("SELECT status, sum(amount) % 7, count(*) % 3, round(sum(amount) / count(*), 2) AS mean FROM orders GROUP BY status ORDER BY round(sum(amount) / count(*), 2) DESC, status"),
        exact("SELECT region, count(*) FROM users GROUP BY region HAVING sum(score) / count(*) > 50 AND round(avg(balance)) >= 0 ORDER BY region NULLS FIRST"),
        exact("SELECT score, count(*) * score AS weighted, (count(*) + score)::numeric(10,1) FROM users GROUP BY score ORDER BY score NULLS FIRST"),
        exact("SELECT COALESCE(sum(score) + 1, 0), sum(score) / count(*) FROM users WHERE region = 'nowhere'"),
        exact("SELECT (sum(balance) / count(*))::numeric(12,2) AS mean, sum(balance) * 1.5 FROM users WHERE active"),
        // Errors arithmetic raises on one server are raised after merging.
        exact("SELECT sum(score) / (count(*) - count(*)) FROM users"),
        exact("SELECT sum(balance) % (count(*) - count(*)) FROM users"),
        exact("SELECT count(*) * 9223372036854775807 FROM users"),
        exact("SELECT round(sum(score)::float8, 1) FROM users"),
        exact("SELECT sum(score)::float8 % 2 FROM users"),
        // Errors a cast raises on one server are raised after merging.
        exact("SELECT sum(id)::smallint FROM users"),
        exact("SELECT sum(balance)::numeric(4,2) FROM users"),
        exact("SELECT region, count(*)::int2, sum(id)::int2 FROM users GROUP BY region ORDER BY region"),
        // ORDER BY, LIMIT, OFFSET.
        exact("SELECT id, score FROM users ORDER BY score NULLS FIRST, id"),
        exact("SELECT id, score FROM users ORDER BY score DESC, id"),
        exact("SELECT id, score FROM users ORDER BY score DESC NULLS LAST, id DESC"),
        exact("SELECT id, region FROM users ORDER BY region, id"),
        exact("SELECT id AS k, balance AS b FROM users ORDER BY b DESC, k LIMIT 20"),
        exact("SELECT name, id FROM users ORDER BY 2 DESC LIMIT 15"),
        exact("SELECT id, score FROM users WHERE score IS NOT NULL ORDER BY score % 7, id DESC LIMIT 30"),
        exact("SELECT name FROM users ORDER BY created, id LIMIT 25"),
        exact("SELECT id FROM users ORDER BY balance DESC, id LIMIT 10"),
        exact("SELECT id, name FROM users ORDER BY name"),
        exact("SELECT id, balance FROM users ORDER BY balance, id OFFSET 590"),
        exact("SELECT id FROM users ORDER BY id LIMIT 10 OFFSET 100"),
        exact("SELECT id FROM users ORDER BY id DESC LIMIT $1 OFFSET $2")
            .with(vec![Bigint(8), Bigint(37)]),
        exact("SELECT id, created FROM users ORDER BY created DESC, id LIMIT 7"),
        exact("SELECT * FROM orders ORDER BY amount DESC, id LIMIT 12"),
        exact("SELECT id, score::float8 / 3 AS third FROM users WHERE score IS NOT NULL ORDER BY third, id LIMIT 10"),
        exact("SELECT id, name FROM users ORDER BY id LIMIT 0"),
        // DISTINCT.
        any("SELECT DISTINCT region FROM users"),
        exact("SELECT DISTINCT region, active FROM users ORDER BY region, active"),
        exact("SELECT DISTINCT status FROM orders ORDER BY status"),
        exact("SELECT DISTINCT score FROM users ORDER BY score NULLS FIRST LIMIT 10"),
        exact("SELECT count(DISTINCT id) FROM users"),
        // DISTINCT where the shards' distinct values merge exactly: any column for min,
        // max, bool_and and bool_or, the shard key for count, sum and avg.
        exact("SELECT min(DISTINCT score), max(DISTINCT name), bool_and(DISTINCT active), bool_or(DISTINCT active), count(DISTINCT id), sum(DISTINCT id), avg(DISTINCT id) FROM users"),
        exact("SELECT region, max(DISTINCT score), sum(DISTINCT id), avg(DISTINCT id) FROM users GROUP BY region ORDER BY region"),
        exact("SELECT DISTINCT country FROM users ORDER BY country LIMIT 3 OFFSET 2"),
        // Joins of co-located sharded tables.
        exact("SELECT u.id, u.name, o.id, o.amount FROM users u JOIN orders o ON u.id = o.user_id WHERE u.id = 42 ORDER BY o.id"),
        any("SELECT u.id, o.id, o.amount FROM users u JOIN orders o ON u.id = o.user_id"),
        exact("SELECT u.region, count(o.id), sum(o.amount) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.region ORDER BY u.region"),
        exact("SELECT u.id, count(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id ORDER BY count(o.id) DESC, u.id LIMIT 20"),
        exact("SELECT u.name, o.status FROM users u, orders o WHERE u.id = o.user_id AND o.status = 'paid' AND u.active ORDER BY o.id LIMIT 50"),
        exact("SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id WHERE o.user_id = $1 ORDER BY o.id")
            .with(vec![Bigint(207)]),
        exact("SELECT name FROM users WHERE id = 7 AND id IN (SELECT user_id FROM orders WHERE user_id = 7)"),
        // The replicated table, alone and joined.
        exact("SELECT code, name FROM countries ORDER BY code"),
        exact("SELECT count(*) FROM countries"),
        exact("SELECT * FROM countries WHERE code = $1").with(vec![Text("de".to_string())]),
        exact("SELECT c.name, count(*) FROM users u JOIN countries c ON c.code = u.country GROUP BY c.name ORDER BY c.name"),
        exact("SELECT u.id, c.name FROM users u JOIN countries c ON c.code = u.country WHERE u.id = 99"),
        any("SELECT u.id, c.name FROM users u JOIN countries c ON c.code = u.country WHERE u.score > 70"),
        // No table, or only the catalog.
        exact("SELECT 1"),
        exact("SELECT now() IS NOT NULL"),
        exact("SELECT count(*) FROM pg_catalog.pg_class WHERE relname IN ('users', 'orders', 'countries')"),
    ]
}

/// Queries whose columns the merge types itself (wrapped aggregates, avg): a driver that
/// describes the portal sees these types, sizes and modifiers, and gets binary values
/// encoded for them.
const RETYPED: [&str; 5] = [
    "SELECT count(*)::int, CAST(count(*) AS bigint) AS n, sum(score)::text, COALESCE(sum(balance), 0), \
     avg(score)::numeric(10,2), sum(score)::float8, avg(balance)::real, count(*)::varchar(2), \
     count(*)::int2, bool_or(active)::int, avg(score) FROM users",
    "SELECT region, count(*)::int AS n, avg(score)::numeric(10,3) FROM users GROUP BY region ORDER BY n DESC, region NULLS FIRST",
    "SELECT COALESCE(sum(amount), 0.00) AS total, COALESCE(max(status), 'none'), COALESCE(count(*), 0)::int2 FROM orders WHERE status = 'lost'",
    "SELECT status, avg(amount), sum(amount)::numeric(12,1) FROM orders GROUP BY status ORDER BY 2",
    "SELECT region, sum(score) / count(*) AS per_user, 100.0 * count(*) / sum(score), round(avg(balance), 1), \
     sum(score)::float8 / 3, abs(min(score)), -max(balance) FROM users GROUP BY region ORDER BY region NULLS FIRST",
];

/// Runs each [`RETYPED`] query on raw connections to both sides, as a simple Query and
/// as Parse, Bind (binary results), Describe of the portal and Execute: every message
/// must match, RowDescriptions in all but the table columns (whose OIDs differ) and
/// DataRows byte for byte.
async fn compare_result_columns(run: &mut Run) -> Result<()> {
    for sql in RETYPED {
        let exchanges = vec![wire::query(sql), binary_portal(sql)];
        let reference = described_exchanges(run.reference_addr, &exchanges).await?;
        let proxied = described_exchanges(run.proxy_addr, &exchanges).await?;
        run.expect(reference == proxied, || {
            format!(
                "result columns of {sql}:\n  reference: {reference:?}\n  proxy:     {proxied:?}"
            )
        });
    }
    Ok(())
}

/// Parse, Bind with every result column in binary, Describe of the portal, Execute and
/// Sync of `sql`.
fn binary_portal(sql: &str) -> Exchange {
    let mut bind = vec![0, 0]; // unnamed portal, unnamed statement
    bind.extend_from_slice(&0i16.to_be_bytes()); // no parameter formats
    bind.extend_from_slice(&0i16.to_be_bytes()); // no parameters
    bind.extend_from_slice(&1i16.to_be_bytes()); // one result format for all: binary
    bind.extend_from_slice(&1i16.to_be_bytes());
    let mut batch = wire::parse("", sql);
    batch.extend(wire::message(b'B', &bind));
    batch.extend(wire::message(b'D', b"P\0"));
    batch.extend(wire::execute());
    batch.extend(wire::sync());
    batch
}

/// Like [`raw_exchanges`], with RowDescriptions in full but for the table columns and
/// DataRows as bytes.
async fn described_exchanges(addr: SocketAddr, exchanges: &[Exchange]) -> Result<Vec<String>> {
    let (mut raw, _) = RawConnection::login(addr, &User::app()).await?;
    let mut replies = Vec::new();
    for exchange in exchanges {
        raw.send_bytes(exchange).await?;
        match raw.read_until_ready().await {
            Ok(messages) => replies.extend(messages.iter().map(|m| match m.tag {
                b'T' => row_description(&m.body),
                b'D' => format!("D {:02x?}", m.body),
                _ => reply_summary(m),
            })),
            Err(error) => {
                replies.push(format!("no answer: {error}"));
                break;
            }
        }
    }
    Ok(replies)
}

/// Each column of a RowDescription: name, type OID, size, modifier and format.
fn row_description(body: &[u8]) -> String {
    let mut columns = Vec::new();
    let mut at = 2;
    let count = body
        .get(..2)
        .map_or(0, |b| i16::from_be_bytes([b[0], b[1]]));
    for _ in 0..count {
        let Some(end) = body[at.min(body.len())..].iter().position(|&b| b == 0) else {
            break;
        };
        let name = String::from_utf8_lossy(&body[at..at + end]).into_owned();
        at += end + 1;
        let Some(fields) = body.get(at..at + 18) else {
            break;
        };
        // Table OID (4) and attribute number (2) are skipped.
        let oid = i32::from_be_bytes([fields[6], fields[7], fields[8], fields[9]]);
        let size = i16::from_be_bytes([fields[10], fields[11]]);
        let typmod = i32::from_be_bytes([fields[12], fields[13], fields[14], fields[15]]);
        let format = i16::from_be_bytes([fields[16], fields[17]]);
        columns.push(format!("{name} {oid}/{size}/{typmod}/{format}"));
        at += 18;
    }
    format!("T [{}]", columns.join(", "))
}

/// Compares every read query over both protocols.
async fn compare_reads(run: &mut Run, when: &str) -> Result<()> {
    let before = run.differences.len();
    for case in read_cases() {
        run.compare_both(&case).await?;
    }
    eprintln!(
        "{} shards: reads {when}: {} differences",
        run.shards,
        run.differences.len() - before
    );
    Ok(())
}

/// Prepares a key lookup once on each side and runs it for many keys, so that a shard
/// chosen when the statement was prepared (and not for each execution's key) shows.
async fn compare_prepared_reuse(run: &mut Run) -> Result<()> {
    let sql = "SELECT id, name, balance FROM users WHERE id = $1";
    let reference = run.reference.prepare(sql).await?;
    let proxy = run.proxy.prepare(sql).await;
    let proxy = match proxy {
        Ok(statement) => statement,
        Err(error) => {
            let error = SqlError::from(error);
            run.expect(false, || {
                format!("preparing {sql}: {:?} {}", error.code, error.message)
            });
            return Ok(());
        }
    };
    let mut wrong = Vec::new();
    for id in (1..=40_i64).map(|i| i * 13) {
        let on_reference = run.reference.query(&reference, &[&id]).await?;
        let through_proxy =
            tokio::time::timeout(STATEMENT_TIMEOUT, run.proxy.query(&proxy, &[&id])).await;
        let rendered = |rows: &[tokio_postgres::Row]| -> Vec<String> {
            rows.iter()
                .map(|r| format!("{} {:?}", r.get::<_, i64>(0), r.get::<_, Option<String>>(1)))
                .collect()
        };
        match through_proxy {
            Ok(Ok(rows)) if rendered(&rows) == rendered(&on_reference) => {}
            Ok(Ok(rows)) => wrong.push(format!(
                "id {id}: {:?} instead of {:?}",
                rendered(&rows),
                rendered(&on_reference)
            )),
            Ok(Err(error)) => wrong.push(format!("id {id}: {}", SqlError::from(error).message)),
            Err(_) => {
                wrong.push(format!("id {id}: no answer within {STATEMENT_TIMEOUT:?}"));
                run.recover(sql).await?;
                break;
            }
        }
    }
    run.expect(wrong.is_empty(), || {
        format!(
            "one prepared {sql} run for 40 keys: {} wrong, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(3)]
        )
    });
    Ok(())
}

/// Compares the three tables in full through the proxy, then checks that the shards
/// together hold each user and order once and each country on every shard.
async fn compare_tables(run: &mut Run, nodes: &[Client], when: &str) -> Result<()> {
    for sql in [
        "SELECT id, name, region, score, balance, active, created, country FROM users ORDER BY id",
        "SELECT user_id, id, amount, status FROM orders ORDER BY user_id, id",
        "SELECT code, name FROM countries ORDER BY code",
    ] {
        run.compare_both(&exact(sql)).await?;
    }
    for (table, key) in [("users", "id"), ("orders", "user_id, id")] {
        let reference: i64 = run
            .reference
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        let mut on_shards = 0;
        let mut keys = BTreeSet::new();
        for node in nodes {
            for row in node
                .simple_query(&format!("SELECT ({key})::text FROM {table}"))
                .await?
            {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = row {
                    on_shards += 1;
                    keys.insert(row.get(0).unwrap_or_default().to_string());
                }
            }
        }
        run.expect(
            on_shards == reference && keys.len() == on_shards as usize,
            || {
                format!(
                    "{table} {when}: {on_shards} rows on the shards ({} distinct keys), \
                 {reference} on the reference",
                    keys.len()
                )
            },
        );
    }
    compare_countries_on_every_shard(run, nodes, when).await
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

/// Queries no merge of shard results answers exactly; valid SQL for PostgreSQL.
const REFUSED: [&str; 16] = [
    "SELECT id, rank() OVER (ORDER BY score) FROM users",
    "SELECT a.id, b.id FROM users a JOIN users b ON a.region = b.region WHERE a.id < 5",
    "SELECT u.id, o.id FROM users u JOIN orders o ON u.id = o.id",
    "SELECT count(DISTINCT region) FROM users",
    "SELECT DISTINCT ON (region) region, id FROM users ORDER BY region, id",
    "SELECT string_agg(name, ',') FROM users",
    "SELECT id FROM users WHERE score > (SELECT avg(score) FROM users)",
    "SELECT * FROM unlisted",
    "INSERT INTO unlisted VALUES (1)",
    // Expressions over aggregates the merge does not evaluate, and operators on types it
    // does not compute with (dates).
    "SELECT sqrt(sum(score)) FROM users",
    "SELECT CASE WHEN count(*) > 0 THEN 1 END FROM users",
    "SELECT max(created) - min(created) FROM users",
    "SELECT count(*)::oid FROM users",
    "SELECT COALESCE(sum(score), max(score)) FROM users",
    // A date read from a string by COALESCE is refused once the shards say it is a date.
    "SELECT COALESCE(max(created), '2000-01-01') FROM users",
    // Unmatched rows of the replicated side would come back once per shard.
    "SELECT c.code, count(u.id) FROM countries c LEFT JOIN users u ON u.country = c.code GROUP BY c.code ORDER BY c.code",
];

/// Checks that each [`REFUSED`] query gets 0A000 through the proxy over both protocols,
/// and that the connection answers the next query. A table in neither list (`unlisted`)
/// is created on every shard and on the reference behind the proxy's back.
async fn check_refusals(run: &mut Run, nodes: &[Client]) -> Result<()> {
    let create = "CREATE TABLE unlisted (id int)";
    run.reference.batch_execute(create).await?;
    for node in nodes {
        node.batch_execute(create).await?;
    }
    for sql in REFUSED {
        let case = any(sql);
        let reference = run.on_reference(&case, Protocol::Simple).await?;
        ensure!(
            reference.is_ok(),
            "{sql} fails on the reference: {}",
            answer::summary(&reference)
        );
        for protocol in [Protocol::Simple, Protocol::Extended] {
            let proxy = run.on_proxy(&case, protocol).await?;
            let refused = matches!(&proxy, Err(e) if e.code.as_deref() == Some(SqlState::FEATURE_NOT_SUPPORTED.code()));
            run.expect(refused, || {
                format!(
                    "{}: expected 0A000, got {}",
                    describe(&case, protocol),
                    answer::summary(&proxy)
                )
            });
            let after = run.on_proxy(&exact("SELECT 1"), protocol).await?;
            run.expect(
                matches!(&after, Ok(a) if a.rows == [[Some("1".to_string())]]),
                || {
                    format!(
                        "{}: the next SELECT 1 got {}",
                        describe(&case, protocol),
                        answer::summary(&after)
                    )
                },
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Overrides
// ---------------------------------------------------------------------------------------

/// Checks that `SET pgshard.shard = 1` and `/* pgshard: shard=0 */` send a scan to that
/// shard only (its own count, as read on the node), and that `RESET pgshard.shard`
/// brings back the count of all shards.
async fn check_overrides(run: &mut Run, nodes: &[Client]) -> Result<()> {
    let count = "SELECT count(*) FROM users";
    let direct = |index: usize| {
        let node = &nodes[index];
        async move { Ok::<i64, anyhow::Error>(node.query_one(count, &[]).await?.get(0)) }
    };
    let total: i64 = run.reference.query_one(count, &[]).await?.get(0);
    let (on_1, on_0) = (direct(1).await?, direct(0).await?);

    let set = run
        .on_proxy(&exact("SET pgshard.shard = 1"), Protocol::Simple)
        .await?;
    run.expect(set.is_ok(), || {
        format!("SET pgshard.shard = 1: {}", answer::summary(&set))
    });
    run.expect_count(count, on_1, "after SET pgshard.shard = 1")
        .await?;
    let reset = run
        .on_proxy(&exact("RESET pgshard.shard"), Protocol::Simple)
        .await?;
    run.expect(reset.is_ok(), || {
        format!("RESET pgshard.shard: {}", answer::summary(&reset))
    });
    run.expect_count(count, total, "after RESET pgshard.shard")
        .await?;
    let hinted = format!("/* pgshard: shard=0 */ {count}");
    run.expect_count(&hinted, on_0, "with the hint").await?;
    run.expect_count(count, total, "after the hinted statement")
        .await
}

impl Run {
    /// Checks that `sql` (one bigint) gives `expected` through the proxy over both
    /// protocols.
    async fn expect_count(&mut self, sql: &str, expected: i64, when: &str) -> Result<()> {
        let case = exact(sql);
        for protocol in [Protocol::Simple, Protocol::Extended] {
            let proxy = self.on_proxy(&case, protocol).await?;
            let got = proxy
                .as_ref()
                .ok()
                .and_then(|a| a.rows.first())
                .and_then(|row| row.first().cloned().flatten());
            self.expect(got == Some(expected.to_string()), || {
                format!(
                    "{} {when}: expected {expected}, got {}",
                    describe(&case, protocol),
                    answer::summary(&proxy)
                )
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------

/// Writes compared once each (counts, RETURNING rows), with the protocol they go by.
fn write_cases() -> Vec<(Protocol, Case)> {
    use Param::{Bigint, Int, Text};
    use Protocol::{Extended, Simple};
    let new_users: Vec<String> = [1007, 1001, 1010, 1003, 1002, 1009]
        .into_iter()
        .map(|id| user(id).values())
        .collect();
    vec![
        (
            Simple,
            exact(&format!(
                "INSERT INTO users (id, name, region, score, balance, active, created, country) \
                 VALUES {} RETURNING id, name, balance",
                new_users.join(", ")
            )),
        ),
        (
            Extended,
            exact(
                "INSERT INTO orders (id, user_id, amount, status) VALUES \
                 ($1, $2, $3::text::numeric, 'new'), ($4, $5, $6::text::numeric, 'new'), \
                 ($7, $8, $9::text::numeric, 'paid') RETURNING user_id, id, amount, status",
            )
            .with(vec![
                Bigint(10090),
                Bigint(1009),
                Text("12.50".into()),
                Bigint(10010),
                Bigint(1001),
                Text("7.25".into()),
                Bigint(10030),
                Bigint(1003),
                Text("99.99".into()),
            ]),
        ),
        (
            Extended,
            exact("INSERT INTO users (id, name) VALUES ($1, $2) RETURNING *")
                .with(vec![Bigint(1020), Text("bound".into())]),
        ),
        (
            Simple,
            exact("INSERT INTO countries (code, name) VALUES ('nz', 'New Zealand') RETURNING code, name"),
        ),
        // Without a column list the key is found by position (orders: the second column).
        (
            Simple,
            exact("INSERT INTO users VALUES (1030, 'positional', 'south') RETURNING id, name, region"),
        ),
        (
            Extended,
            exact("INSERT INTO users VALUES ($1, $2) RETURNING id, name")
                .with(vec![Bigint(1031), Text("bound positional".into())]),
        ),
        (
            Simple,
            exact(
                "INSERT INTO orders VALUES (10500, 1001, 5.00, 'new'), (10501, 1002, 6.25, 'new'), \
                 (10502, 1003, 7.5, 'paid') RETURNING user_id, id, amount",
            ),
        ),
        (Simple, any("UPDATE users SET score = score + 1 WHERE region = 'north'")),
        (
            Extended,
            any("UPDATE users SET active = NOT active WHERE score < $1").with(vec![Int(-10)]),
        ),
        (Simple, any("UPDATE users SET balance = balance + 10.5 WHERE id = 17")),
        (Extended, any("UPDATE orders SET status = 'archived' WHERE amount < 100")),
        (Simple, any("UPDATE countries SET name = upper(name) WHERE code IN ('de', 'fr')")),
        (
            Simple,
            any("UPDATE users SET score = 0 WHERE id IN (2, 3, 4, 5, 1001) RETURNING id, score"),
        ),
        (Simple, any("UPDATE users SET score = NULL WHERE false")),
        (
            Simple,
            any("DELETE FROM orders WHERE status = 'cancelled' AND user_id % 5 = 0"),
        ),
        (Extended, any("DELETE FROM users WHERE id = $1").with(vec![Bigint(600)])),
        (Simple, any("DELETE FROM users WHERE id > 1005 RETURNING id, name")),
        (Extended, any("DELETE FROM countries WHERE code = $1").with(vec![Text("nz".into())])),
    ]
}

/// Runs every write once on each side and compares what they answered.
async fn compare_writes(run: &mut Run) -> Result<()> {
    for (protocol, case) in write_cases() {
        let reference = run.on_reference(&case, protocol).await?;
        ensure!(
            reference.is_ok(),
            "{} fails on the reference: {}",
            case.sql,
            answer::summary(&reference)
        );
        run.compare_outcome(&case, protocol, reference).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Transactions across shards
// ---------------------------------------------------------------------------------------

/// Ids for the transaction checks; ten consecutive ids always span several shards.
fn txn_ids(first: i64) -> Vec<i64> {
    (first..first + 10).collect()
}

/// Checks that a transaction writing on several shards rolls back and commits on all of
/// them, and that one whose statement fails on one shard leaves nothing anywhere.
async fn check_transactions(run: &mut Run, nodes: &[Client]) -> Result<()> {
    let rolled_back = txn_ids(2001);
    insert_in_transaction(run, &rolled_back, "ROLLBACK").await?;
    let (found, _) = rows_on_shards(nodes, &rolled_back).await?;
    run.expect(found.is_empty(), || {
        format!("after ROLLBACK, rows {found:?} remain on the shards")
    });

    let committed = txn_ids(2101);
    insert_in_transaction(run, &committed, "COMMIT").await?;
    let (found, shards) = rows_on_shards(nodes, &committed).await?;
    run.expect(found == committed, || {
        format!("after COMMIT, the shards hold {found:?} of {committed:?}")
    });
    run.expect(shards.len() > 1, || {
        format!("the committed rows are all on shards {shards:?}: not a multi-shard check")
    });
    for id in &committed {
        run.reference
            .execute("INSERT INTO users (id, name) VALUES ($1, 'txn')", &[id])
            .await?;
    }

    failing_transaction(run, nodes).await
}

/// Through the proxy: BEGIN, one INSERT per id, a count inside the transaction (it must
/// see all of them), then `end` (COMMIT or ROLLBACK).
async fn insert_in_transaction(run: &mut Run, ids: &[i64], end: &str) -> Result<()> {
    let steps = async {
        let proxy = &run.proxy;
        proxy.batch_execute("BEGIN").await?;
        for id in ids {
            proxy
                .execute("INSERT INTO users (id, name) VALUES ($1, 'txn')", &[id])
                .await?;
        }
        let seen: i64 = proxy
            .query_one(
                "SELECT count(*) FROM users WHERE id BETWEEN $1 AND $2",
                &[&ids[0], &ids[ids.len() - 1]],
            )
            .await?
            .get(0);
        proxy.batch_execute(end).await?;
        Ok::<i64, tokio_postgres::Error>(seen)
    };
    let outcome = tokio::time::timeout(STATEMENT_TIMEOUT, steps).await;
    let what = format!("transaction ending in {end}");
    let went_through = matches!(outcome, Ok(Ok(_)));
    match outcome {
        Ok(Ok(seen)) => run.expect(seen == ids.len() as i64, || {
            format!(
                "{what}: a count inside it saw {seen} of its {} rows",
                ids.len()
            )
        }),
        Ok(Err(error)) => run.expect(false, || {
            let error = SqlError::from(error);
            format!("{what}: {:?} {}", error.code, error.message)
        }),
        Err(_) => run.expect(false, || format!("{what}: hung")),
    }
    if run.proxy.is_closed() || !went_through {
        run.recover(&what).await?;
    }
    Ok(())
}

/// The given ids found on the shards (sorted), and the shards they were found on.
async fn rows_on_shards(nodes: &[Client], ids: &[i64]) -> Result<(Vec<i64>, BTreeSet<usize>)> {
    let mut found = Vec::new();
    let mut shards = BTreeSet::new();
    for (index, node) in nodes.iter().enumerate() {
        for row in node
            .query("SELECT id FROM users WHERE id = ANY($1)", &[&ids])
            .await?
        {
            found.push(row.get::<_, i64>(0));
            shards.insert(index);
        }
    }
    found.sort();
    Ok((found, shards))
}

/// Over a raw connection, to see the command tags: BEGIN; INSERT rows on several
/// shards; an INSERT that fails with a duplicate key on one shard only (the error must
/// reach the client); a statement in the failed transaction (25P02); COMMIT, which must
/// answer ROLLBACK; and nothing of it may remain on any shard.
async fn failing_transaction(run: &mut Run, nodes: &[Client]) -> Result<()> {
    let ids = txn_ids(3001);
    let first: Vec<String> = ids[..9].iter().map(|id| format!("({id}, 'txn')")).collect();
    let failing = [
        ("BEGIN".to_string(), Expect::Tag("BEGIN")),
        (
            format!("INSERT INTO users (id, name) VALUES {}", first.join(", ")),
            Expect::Tag("INSERT 0 9"),
        ),
        (
            format!(
                "INSERT INTO users (id, name) VALUES ({}, 'txn'), (1, 'duplicate')",
                ids[9]
            ),
            Expect::Error("23505"),
        ),
        ("SELECT 1".to_string(), Expect::Error("25P02")),
        ("COMMIT".to_string(), Expect::Tag("ROLLBACK")),
        ("SELECT 1".to_string(), Expect::Tag("SELECT 1")),
    ];
    raw_session(run, "failing transaction", &failing).await?;
    let (found, _) = rows_on_shards(nodes, &ids).await?;
    run.expect(found.is_empty(), || {
        format!("failing transaction: rows {found:?} remain on the shards")
    });
    Ok(())
}

/// Sends each statement as a simple Query on a new raw connection to the proxy and
/// records each whose first result (command tag or SQLSTATE) is not the expected one.
async fn raw_session(run: &mut Run, what: &str, steps: &[(String, Expect)]) -> Result<()> {
    let (mut raw, _) = RawConnection::login(run.proxy_addr, &User::app()).await?;
    for (sql, expect) in steps {
        raw.send_bytes(&wire::query(sql)).await?;
        let got = match raw.read_until_ready().await {
            Ok(replies) => replies
                .iter()
                .find_map(|m| match m.tag {
                    b'C' => Some(format!("tag {}", command_tag(&m.body))),
                    b'E' => Some(format!("error {}", m.sqlstate().unwrap_or_default())),
                    _ => None,
                })
                .unwrap_or_else(|| format!("{} messages, none a result", replies.len())),
            Err(error) => format!("no answer: {error}"),
        };
        let wanted = match expect {
            Expect::Tag(tag) => format!("tag {tag}"),
            Expect::Error(code) => format!("error {code}"),
        };
        run.expect(got == wanted, || {
            format!("{what}, {sql}: expected {wanted}, got {got}")
        });
        if got.starts_with("no answer") {
            break;
        }
    }
    Ok(())
}

/// What a statement of [`failing_transaction`] must get.
enum Expect {
    Tag(&'static str),
    Error(&'static str),
}

/// A CommandComplete body as text, without its terminating NUL.
fn command_tag(body: &[u8]) -> String {
    String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body)).into_owned()
}

// ---------------------------------------------------------------------------------------
// Implicit transactions
// ---------------------------------------------------------------------------------------

/// One exchange of an implicit-transaction case: messages sent at once, answered up to
/// one ReadyForQuery.
type Exchange = Vec<u8>;

/// Query strings of several statements and extended batches of several Executes before
/// one Sync, each one implicit transaction in PostgreSQL: run over raw connections on
/// both sides, every message must match (RowDescriptions by kind only: table OIDs differ),
/// and the tables must match afterwards.
async fn compare_implicit_blocks(run: &mut Run, nodes: &[Client]) -> Result<()> {
    for (what, exchanges) in implicit_block_cases().into_iter().chain(savepoint_cases()) {
        let reference = raw_exchanges(run.reference_addr, &exchanges).await?;
        let proxied = raw_exchanges(run.proxy_addr, &exchanges).await?;
        run.expect(reference == proxied, || {
            format!("{what}:\n  reference: {reference:?}\n  proxy:     {proxied:?}")
        });
    }
    compare_tables(run, nodes, "after the implicit transactions").await
}

/// `INSERT INTO users` of `ids`, all named `name`.
fn insert_users(ids: RangeInclusive<i64>, name: &str) -> String {
    let rows: Vec<String> = ids.map(|id| format!("({id}, '{name}')")).collect();
    format!("INSERT INTO users (id, name) VALUES {}", rows.join(", "))
}

/// An extended batch: Parse of `sql` (one `$1`), a Bind and Execute per value, Sync.
fn batch(sql: &str, values: &[i64]) -> Exchange {
    let mut bytes = wire::parse("", sql);
    for value in values {
        bytes.extend(wire::bind("", &[Some(&value.to_string())]));
        bytes.extend(wire::execute());
    }
    bytes.extend(wire::sync());
    bytes
}

fn implicit_block_cases() -> Vec<(&'static str, Vec<Exchange>)> {
    let insert_one = "INSERT INTO users (id, name) VALUES ($1, 'batch')";
    let mut begin_then_insert = wire::parse("", "BEGIN");
    begin_then_insert.extend(wire::bind("", &[]));
    begin_then_insert.extend(wire::execute());
    begin_then_insert.extend(batch(insert_one, &[5071]));
    vec![
        (
            "a failing statement undoes what the string wrote before it, on every shard",
            vec![wire::query(&format!(
                "{}; UPDATE users SET score = 7 WHERE id = 5002; {}",
                insert_users(5001..=5010, "block"),
                insert_users(5005..=5005, "duplicate")
            ))],
        ),
        (
            "a string that goes through commits on every shard",
            vec![wire::query(&format!(
                "{}; UPDATE users SET score = 8 WHERE id BETWEEN 5011 AND 5020",
                insert_users(5011..=5020, "block")
            ))],
        ),
        (
            "COMMIT inside a string commits what came before it",
            vec![wire::query(&format!(
                "{}; COMMIT; {}; {}",
                insert_users(5021..=5025, "block"),
                insert_users(5026..=5030, "block"),
                insert_users(5026..=5026, "duplicate")
            ))],
        ),
        (
            "BEGIN inside a string makes its transaction explicit",
            vec![
                wire::query(&format!(
                    "{}; BEGIN; {}",
                    insert_users(5031..=5035, "block"),
                    insert_users(5036..=5040, "block")
                )),
                wire::query("ROLLBACK"),
            ],
        ),
        (
            "a read after a write in the same string sees it",
            vec![wire::query(&format!(
                "SELECT count(*) FROM users WHERE id BETWEEN 5041 AND 5050; {}; \
                 SELECT count(*) FROM users WHERE id BETWEEN 5041 AND 5050",
                insert_users(5041..=5050, "block")
            ))],
        ),
        (
            "a failing Execute undoes the batch's earlier ones",
            vec![batch(insert_one, &[5051, 5052, 5053, 5054, 5051])],
        ),
        (
            "a batch that goes through commits every row",
            vec![batch(insert_one, &[5061, 5062, 5063, 5064, 5065])],
        ),
        (
            "BEGIN in a batch opens a transaction that outlives it",
            vec![
                begin_then_insert,
                wire::query(&insert_users(5072..=5075, "block")),
                wire::query("COMMIT"),
            ],
        ),
    ]
}

/// Savepoints in transactions over several shards, each statement a simple query:
/// rollbacks to them, releases, recovery from an error, shards reached only after the
/// savepoint, and the errors PostgreSQL gives for misuse.
fn savepoint_cases() -> Vec<(&'static str, Vec<Exchange>)> {
    let session = |statements: &[String]| statements.iter().map(|sql| wire::query(sql)).collect();
    let s = |sql: &str| sql.to_string();
    vec![
        (
            "a rollback to a savepoint undoes what came after it on every shard",
            session(&[
                s("BEGIN"),
                insert_users(5101..=5110, "sp"),
                s("SAVEPOINT a"),
                insert_users(5111..=5120, "sp"),
                s("UPDATE users SET score = 9 WHERE id BETWEEN 5101 AND 5120"),
                s("ROLLBACK TO SAVEPOINT a"),
                s("SELECT count(*), sum(score) FROM users WHERE id BETWEEN 5101 AND 5120"),
                insert_users(5121..=5125, "sp"),
                s("COMMIT"),
            ]),
        ),
        (
            "shards reached after the savepoint are rolled back to it too",
            session(&[
                s("BEGIN"),
                insert_users(5131..=5131, "sp"),
                s("SAVEPOINT a"),
                insert_users(5132..=5140, "sp"),
                s("ROLLBACK TO a"),
                s("SELECT count(*) FROM users WHERE id BETWEEN 5131 AND 5140"),
                s("COMMIT"),
            ]),
        ),
        (
            "a rollback to a savepoint recovers a failed transaction",
            session(&[
                s("BEGIN"),
                insert_users(5141..=5145, "sp"),
                s("SAVEPOINT b"),
                insert_users(5141..=5141, "duplicate"),
                s("SELECT 1"),
                s("RELEASE b"),
                s("ROLLBACK TO b"),
                insert_users(5146..=5146, "sp"),
                s("RELEASE SAVEPOINT b"),
                s("COMMIT"),
            ]),
        ),
        (
            "releasing a savepoint releases those after it; a rollback ends everything",
            session(&[
                s("BEGIN"),
                s("SAVEPOINT a"),
                insert_users(5151..=5155, "sp"),
                s("SAVEPOINT b"),
                insert_users(5156..=5160, "sp"),
                s("RELEASE a"),
                s("ROLLBACK TO b"),
                s("ROLLBACK"),
            ]),
        ),
        (
            "savepoints outside a transaction block are errors",
            session(&[
                s("SAVEPOINT a"),
                s("RELEASE a"),
                s("ROLLBACK TO a"),
                format!("{}; SAVEPOINT a", insert_users(5161..=5165, "sp")),
                s("BEGIN"),
                s("ROLLBACK TO nowhere"),
                s("ROLLBACK"),
            ]),
        ),
    ]
}

/// Sends each exchange on one new connection to `addr` and summarises every reply.
async fn raw_exchanges(addr: SocketAddr, exchanges: &[Exchange]) -> Result<Vec<String>> {
    let (mut raw, _) = RawConnection::login(addr, &User::app()).await?;
    let mut replies = Vec::new();
    for exchange in exchanges {
        raw.send_bytes(exchange).await?;
        match raw.read_until_ready().await {
            Ok(messages) => replies.extend(messages.iter().map(reply_summary)),
            Err(error) => {
                replies.push(format!("no answer: {error}"));
                break;
            }
        }
    }
    Ok(replies)
}

/// A reply as the comparison sees it.
fn reply_summary(message: &wire::BackendMessage) -> String {
    match message.tag {
        b'C' => format!("C {}", command_tag(&message.body)),
        b'E' | b'N' => format!(
            "{} {}",
            message.tag as char,
            message.sqlstate().unwrap_or_default()
        ),
        b'Z' => format!("Z {}", message.body.first().map_or('?', |&b| b as char)),
        b'D' => format!("D {:?}", wire::data_row(message)),
        other => (other as char).to_string(),
    }
}
