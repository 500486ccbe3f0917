//! A session-level mutation fuzzer through a running proxy against real PostgreSQL:
//! recorded client sessions (simple and extended queries, transactions, savepoints,
//! errors, COPY, settings) are replayed with frames flipped, cut, duplicated, dropped,
//! swapped or left half-sent. After the cases, and at checkpoints between them: the
//! proxy is alive and a bystander client gets its own answers, the proxy holds no
//! connection of a finished case, no server connection is left running or inside a
//! transaction, and the test process's file descriptors and memory stay bounded.
//!
//! Deterministic: the seed is fixed (`PGSHARD_FUZZ_SEED` and `PGSHARD_FUZZ_SESSIONS`
//! run others and more).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use pgshard_tests::wire::{self, RawConnection};
use pgshard_tests::{start_sharded_proxy_with, wait_for, Cluster, ProxyOptions, TestProxy, User};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

/// Mutated sessions per database kind unless `PGSHARD_FUZZ_SESSIONS` says otherwise.
const SESSIONS: usize = 300;

/// How long a case waits for more replies once the proxy has gone quiet.
const QUIET: Duration = Duration::from_millis(60);

/// A bystander's answers are checked every this many cases.
const CHECKPOINT: usize = 50;

/// One database kind at a time, so that each one's file descriptors and memory are its
/// own (the test process holds both proxies).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sessions() -> usize {
    std::env::var("PGSHARD_FUZZ_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SESSIONS)
}

fn rng(kind: u64) -> StdRng {
    let seed = std::env::var("PGSHARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_5510_f022_u64);
    StdRng::seed_from_u64(seed ^ kind)
}

fn copy_data(data: &str) -> Vec<u8> {
    wire::message(b'd', data.as_bytes())
}

fn copy_done() -> Vec<u8> {
    wire::message(b'c', b"")
}

fn describe_portal() -> Vec<u8> {
    wire::message(b'D', b"P\0")
}

/// Client sessions as drivers send them, one message per entry; `fuzz` has columns
/// `id bigint` (the shard key) and `v text`.
fn recorded_sessions() -> Vec<Vec<Vec<u8>>> {
    vec![
        vec![
            wire::query("SELECT 1"),
            wire::query("SELECT id, v FROM fuzz WHERE id = 1"),
        ],
        vec![
            wire::query("BEGIN"),
            wire::query("INSERT INTO fuzz (id, v) VALUES (101, 'a')"),
            wire::query("UPDATE fuzz SET v = 'b' WHERE id = 101"),
            wire::query("ROLLBACK"),
        ],
        vec![
            wire::parse("s1", "SELECT v FROM fuzz WHERE id = $1"),
            wire::bind("s1", &[Some("2")]),
            describe_portal(),
            wire::execute(),
            wire::sync(),
            wire::bind("s1", &[Some("3")]),
            wire::execute(),
            wire::sync(),
        ],
        vec![
            wire::parse("", "SELECT $1::int + 1"),
            wire::bind("", &[Some("41")]),
            wire::execute(),
            wire::parse("", "SELECT count(*) FROM fuzz"),
            wire::bind("", &[]),
            wire::execute(),
            wire::sync(),
        ],
        vec![wire::query("SELECT 1/0"), wire::query("SELECT 2")],
        vec![
            wire::query("BEGIN"),
            wire::query("SAVEPOINT a"),
            wire::query("INSERT INTO fuzz (id, v) VALUES (102, 'c')"),
            wire::query("ROLLBACK TO SAVEPOINT a"),
            wire::query("SELECT 1/0"),
            wire::query("ROLLBACK"),
        ],
        vec![
            wire::query("BEGIN"),
            wire::query("COPY fuzz (id, v) FROM STDIN"),
            copy_data("103\td\n104\te\n"),
            copy_done(),
            wire::query("ROLLBACK"),
        ],
        vec![
            wire::query("SET application_name = 'fuzz'"),
            wire::query("SHOW application_name"),
            wire::query("RESET application_name"),
        ],
        vec![
            wire::query("BEGIN; SELECT v FROM fuzz WHERE id = 4; COMMIT"),
            wire::query("SELECT id FROM fuzz ORDER BY id LIMIT 3"),
        ],
    ]
}

/// One to three mutations of a session, at the level of its messages.
fn mutate(rng: &mut StdRng, session: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut frames = session.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        let n = frames.len();
        if n == 0 {
            break;
        }
        let i = rng.gen_range(0..n);
        if frames[i].is_empty() {
            continue;
        }
        match rng.gen_range(0..8) {
            // A byte flipped: the tag, the length word or the body.
            0 | 1 => {
                let frame = &mut frames[i];
                let at = rng.gen_range(0..frame.len());
                frame[at] ^= 1 << rng.gen_range(0..8);
            }
            2 => {
                let frame = &mut frames[i];
                let keep = rng.gen_range(0..frame.len());
                frame.truncate(keep);
            }
            3 => {
                let copy = frames[i].clone();
                frames.insert(i, copy);
            }
            4 => {
                frames.remove(i);
            }
            5 => {
                let j = rng.gen_range(0..n);
                frames.swap(i, j);
            }
            6 => {
                // A length word made extreme.
                let frame = &mut frames[i];
                if frame.len() >= 5 {
                    let word: i32 = match rng.gen_range(0..4) {
                        0 => 0,
                        1 => -1,
                        2 => i32::MAX,
                        _ => rng.gen_range(4..200_000),
                    };
                    frame[1..5].copy_from_slice(&word.to_be_bytes());
                }
            }
            _ => {
                // The session ends mid-message: the rest is never sent.
                let frame = &mut frames[i];
                let keep = rng.gen_range(0..frame.len());
                frame.truncate(keep);
                frames.truncate(i + 1);
            }
        }
    }
    frames
}

/// What a case did, for the report.
#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    closed_by_proxy: usize,
    errors: usize,
    ready: usize,
}

/// Sends a mutated session and reads what comes until the proxy closes the connection
/// or goes quiet; then leaves, with or without a Terminate.
async fn run_case(
    addr: SocketAddr,
    frames: &[Vec<u8>],
    rng: &mut StdRng,
    tally: &mut Tally,
) -> Result<()> {
    let (mut conn, _) = RawConnection::login(addr, &User::app())
        .await
        .context("log in for a case")?;
    tally.cases += 1;
    let bytes: Vec<u8> = frames.concat();
    // Sent whole or in small pieces, as clients' writes arrive either way.
    if rng.gen_bool(0.5) {
        let _ = conn.send_bytes(&bytes).await;
    } else {
        let size = rng.gen_range(1..64);
        for piece in bytes.chunks(size) {
            if conn.send_bytes(piece).await.is_err() {
                break;
            }
        }
    }
    loop {
        match tokio::time::timeout(QUIET, conn.read_message()).await {
            Ok(Ok(Some(message))) => match message.tag {
                b'E' => tally.errors += 1,
                b'Z' => tally.ready += 1,
                _ => {}
            },
            Ok(Ok(None)) | Ok(Err(_)) => {
                tally.closed_by_proxy += 1;
                return Ok(());
            }
            Err(_) => break,
        }
    }
    if rng.gen_bool(0.5) {
        let _ = conn.send_bytes(&wire::terminate()).await;
    }
    Ok(())
}

/// The proxy still answers a bystander that was connected all along, and a new one,
/// each with its own value.
async fn bystanders_served(addr: SocketAddr, bystander: &Client, case: usize) -> Result<()> {
    let value = case as i32;
    let got: i32 = bystander
        .query_one("SELECT $1::int + 0", &[&value])
        .await
        .with_context(|| format!("the bystander after case {case}"))?
        .get(0);
    ensure!(got == value, "the bystander got {got}, asked {value}");
    let fresh = pgshard_tests::connect(addr, &User::app())
        .await
        .with_context(|| format!("a new client after case {case}"))?;
    let got: i64 = fresh
        .query_one("SELECT count(*) FROM fuzz WHERE id = $1", &[&1i64])
        .await?
        .get(0);
    ensure!(got == 1, "a new client counted {got} rows of id 1");
    Ok(())
}

/// No server connection is running anything or inside a transaction once every case's
/// client has gone; checked on each shard's primary directly.
async fn servers_at_rest(shards: &[Client]) -> Result<()> {
    for (i, shard) in shards.iter().enumerate() {
        wait_for(
            &format!("shard {i}'s server connections to be at rest"),
            Duration::from_secs(10),
            || async {
                let busy: Vec<String> = shard
                    .query(
                        "SELECT state || ': ' || left(query, 60) FROM pg_stat_activity \
                         WHERE usename = 'app' AND pid <> pg_backend_pid() \
                         AND backend_type = 'client backend' \
                         AND state IN ('active', 'idle in transaction', \
                                       'idle in transaction (aborted)', 'fastpath function call')",
                        &[],
                    )
                    .await
                    .map_err(|source| pgshard_tests::HarnessError::Sql {
                        node: format!("shard {i}"),
                        source,
                    })?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                Ok(busy.is_empty().then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Fuzzes the proxy at `addr`, whose database's shards are `shards` (direct clients).
async fn fuzz(
    kind: &str,
    seed: u64,
    addr: SocketAddr,
    shards: &[Client],
    clients: impl Fn() -> usize,
) -> Result<()> {
    let setup = pgshard_tests::connect(addr, &User::app()).await?;
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS fuzz; CREATE TABLE fuzz (id bigint PRIMARY KEY, v text)",
        )
        .await?;
    setup
        .batch_execute(
            "INSERT INTO fuzz (id, v) VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')",
        )
        .await?;
    let bystander = pgshard_tests::connect(addr, &User::app()).await?;
    let recorded = recorded_sessions();
    let mut rng = rng(seed);
    let mut tally = Tally::default();
    let (fds_before, rss_before) = (open_fds(), rss_mb());
    let started = std::time::Instant::now();
    for case in 0..sessions() {
        let session = &recorded[rng.gen_range(0..recorded.len())];
        let frames = mutate(&mut rng, session);
        run_case(addr, &frames, &mut rng, &mut tally).await?;
        if (case + 1) % CHECKPOINT == 0 {
            bystanders_served(addr, &bystander, case).await?;
        }
    }
    // Every case's connection is let go: only the setup client and the bystander stay.
    wait_for(
        &format!("{kind}: the proxy to let go of the cases' connections"),
        Duration::from_secs(10),
        || async { Ok((clients() <= 2).then_some(())) },
    )
    .await?;
    servers_at_rest(shards).await?;
    bystanders_served(addr, &bystander, sessions()).await?;
    // The rows the cases could not have changed: every change was rolled back or refused.
    let rows: i64 = setup
        .query_one("SELECT count(*) FROM fuzz WHERE id <= 4", &[])
        .await?
        .get(0);
    ensure!(rows == 4, "{kind}: {rows} of the 4 seeded rows are left");
    let (fds_after, rss_after) = (open_fds(), rss_mb());
    eprintln!(
        "{kind}: {} mutated sessions in {:.1}s: {} closed by the proxy, {} errors, {} ReadyForQuery; \
         fds {fds_before} -> {fds_after}, test process RSS {rss_before} -> {rss_after} MB",
        tally.cases,
        started.elapsed().as_secs_f64(),
        tally.closed_by_proxy,
        tally.errors,
        tally.ready
    );
    ensure!(
        fds_after <= fds_before + 8,
        "{kind}: open files grew from {fds_before} to {fds_after}"
    );
    ensure!(
        rss_after <= rss_before + 64,
        "{kind}: memory grew from {rss_before} MB to {rss_after} MB"
    );
    ensure!(
        tally.closed_by_proxy > 0 && tally.ready > 0,
        "{kind}: the cases neither broke nor passed anything: {tally:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sessions_on_one_shard_leave_the_proxy_serving() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(1, 0).await?;
    let proxy = TestProxy::start(
        cluster.shard(0).primary(),
        ProxyOptions {
            pool_size: 3,
            max_message_size: "256kB".to_string(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let shards = vec![cluster.shard(0).primary().client(&User::app()).await?];
    fuzz("one shard", 1, proxy.addr(), &shards, || proxy.clients()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sessions_on_two_shards_leave_the_proxy_serving() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(2, 0).await?;
    let proxy = start_sharded_proxy_with(
        &cluster,
        &[("fuzz", "id")],
        3,
        "max_message_size = \"256kB\"",
    )
    .await?;
    let mut shards = Vec::new();
    for shard in cluster.shards() {
        shards.push(shard.primary().client(&User::app()).await?);
    }
    fuzz("two shards", 2, proxy.addr, &shards, || proxy.clients()).await
}
