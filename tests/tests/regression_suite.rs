//! PostgreSQL 15's own regression suite (src/test/regress, as `make installcheck` runs it)
//! through pgshard: in session and in transaction pooling, one test at a time (the serial
//! run of `installcheck`) and in the suite's parallel groups (`installcheck-parallel`), plus
//! one run straight against the server as a baseline.
//!
//! The suite loads C libraries into the server and has it read data files by absolute path,
//! so the server runs on this host, not in Docker: for each run a fresh cluster, initialised
//! as the OS user `postgres` in a scratch directory and listening on 127.0.0.1 only.
//! `tests/regress/prepare.sh` installs PostgreSQL 15 and pg_regress, fetches the source
//! package and builds the libraries (the first time it needs root and Debian's packages).
//!
//! A test may fail only in the runs that `tests/regress/expected-differences.toml` lists
//! for it: under `[[expected]]`, each with the reason a pooler cannot behave as a direct
//! connection there; under `[[known_proxy_bugs]]`, proxy bugs not fixed yet. Any other
//! failure fails this test and shows its diff. Each run's `regression.out` and
//! `regression.diffs` are kept in `target/pg-regress/results/<run>/`.
//!
//! `PGSHARD_REGRESS_RUNS="transaction serial,session serial"` runs only the runs named.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use pgshard_config::PoolMode;
use pgshard_tests::{connect, ProxyOptions, ProxyUser, ScratchDir, TestProxy, User};
use serde::Deserialize;

/// The database pg_regress runs in (its default), on the server and at the proxy.
const DATABASE: &str = "regression";
/// The role the suite runs as: a superuser, as `make installcheck` needs.
const ROLE: &str = "postgres";
/// What clients give the proxy; the server trusts local logins, so it sees no password.
const PASSWORD: &str = "regress";
/// How long one run of the whole schedule may take.
const RUN_LIMIT: Duration = Duration::from_secs(20 * 60);
/// Lines of a test's diff shown when it fails unexpectedly.
const DIFF_EXCERPT_LINES: usize = 80;

/// One pass over the whole schedule.
struct Run {
    name: &'static str,
    /// `None`: straight to the server.
    pool_mode: Option<PoolMode>,
    /// The schedule's parallel groups as they are, or one test at a time.
    parallel: bool,
    pool_size: u32,
}

const RUNS: &[Run] = &[
    Run {
        name: "direct serial",
        pool_mode: None,
        parallel: false,
        pool_size: 0,
    },
    // One client at a time, but `\c` briefly holds two: a small pool is shared by every
    // test of the schedule in turn.
    Run {
        name: "session serial",
        pool_mode: Some(PoolMode::Session),
        parallel: false,
        pool_size: 4,
    },
    Run {
        name: "transaction serial",
        pool_mode: Some(PoolMode::Transaction),
        parallel: false,
        pool_size: 4,
    },
    // Parallel groups have up to 20 tests; a session holds its connection throughout.
    Run {
        name: "session parallel",
        pool_mode: Some(PoolMode::Session),
        parallel: true,
        pool_size: 24,
    },
    // Fewer connections than clients: transactions of different tests share them.
    Run {
        name: "transaction parallel",
        pool_mode: Some(PoolMode::Transaction),
        parallel: true,
        pool_size: 10,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_regression_suite_passes_through_the_proxy_but_for_listed_differences(
) -> Result<()> {
    let prepared = Prepared::run().await?;
    let schedule = prepared.schedule()?;
    let listed = Listed::load(&schedule)?;
    let selected = selected_runs()?;
    // The suite's files, where the OS user `postgres` can read them whatever the checkout's
    // permissions: the server reads data/ and loads the libraries.
    let inputs = ScratchDir::new("regress-inputs")?;
    copy_dir(&prepared.regress_dir, &inputs.file("regress"))?;
    copy_dir(&prepared.dlpath, &inputs.file("lib"))?;
    chmod_readable(inputs.path())?;

    let mut problems = Vec::new();
    for run in RUNS.iter().filter(|run| selected.contains(run.name)) {
        let outcome = run_suite(run, &prepared, inputs.path()).await?;
        problems.extend(judge(run, &outcome, &schedule, &listed));
    }
    ensure!(
        problems.is_empty(),
        "PostgreSQL's regression suite through pgshard (diffs in {}):\n\n{}",
        prepared.results_dir().display(),
        problems.join("\n\n")
    );
    Ok(())
}

/// Prints a line that `cargo test` does not capture: each run's summary is wanted in CI's
/// log even when the test passes.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "regression suite: {line}");
}

fn selected_runs() -> Result<BTreeSet<&'static str>> {
    let all: BTreeSet<&'static str> = RUNS.iter().map(|run| run.name).collect();
    let Ok(wanted) = std::env::var("PGSHARD_REGRESS_RUNS") else {
        return Ok(all);
    };
    let mut selected = BTreeSet::new();
    for name in wanted
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let Some(run) = all.get(name) else {
            bail!("PGSHARD_REGRESS_RUNS names {name:?}; the runs are {all:?}");
        };
        selected.insert(*run);
    }
    Ok(selected)
}

// --- the suite's files ------------------------------------------------------------------

/// What `tests/regress/prepare.sh` prepared.
struct Prepared {
    cache: PathBuf,
    version: String,
    bindir: PathBuf,
    pg_regress: PathBuf,
    regress_dir: PathBuf,
    dlpath: PathBuf,
}

impl Prepared {
    async fn run() -> Result<Prepared> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = manifest.join("regress/prepare.sh");
        let cache = manifest.join("../target/pg-regress");
        let started = Instant::now();
        let output = tokio::process::Command::new("bash")
            .arg(&script)
            .arg(&cache)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("run {}", script.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.success(),
            "{} failed ({}): it installs PostgreSQL 15 and its server development files \
             and fetches their source, which needs root and Debian's package archive\n{}",
            script.display(),
            output.status,
            tail(&stderr, 40)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let values: BTreeMap<&str, &str> = stdout
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let value = |key: &str| -> Result<String> {
            values
                .get(key)
                .map(|value| value.to_string())
                .with_context(|| format!("{} printed no {key}:\n{stdout}", script.display()))
        };
        let prepared = Prepared {
            cache: cache.canonicalize()?,
            version: value("PG_VERSION")?,
            bindir: value("PG_BINDIR")?.into(),
            pg_regress: value("PG_REGRESS")?.into(),
            regress_dir: value("REGRESS_DIR")?.into(),
            dlpath: value("DLPATH")?.into(),
        };
        report(&format!(
            "PostgreSQL {} prepared in {:.1}s",
            prepared.version,
            started.elapsed().as_secs_f64()
        ));
        Ok(prepared)
    }

    /// Every test of `parallel_schedule`, in order.
    fn schedule(&self) -> Result<Vec<String>> {
        let path = self.regress_dir.join("parallel_schedule");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let tests: Vec<String> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("test:"))
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect();
        ensure!(!tests.is_empty(), "{} lists no test", path.display());
        Ok(tests)
    }

    fn results_dir(&self) -> PathBuf {
        self.cache.join("results")
    }
}

// --- the list of expected differences ---------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    #[serde(default)]
    expected: Vec<Entry>,
    #[serde(default)]
    known_proxy_bugs: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    test: String,
    runs: Vec<String>,
    reason: String,
}

/// Why a test may fail in a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowance {
    Expected,
    KnownProxyBug,
}

/// `tests/regress/expected-differences.toml`: (run, test) → why it may fail.
struct Listed {
    entries: BTreeMap<(String, String), Allowance>,
}

impl Listed {
    fn load(schedule: &[String]) -> Result<Listed> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("regress/expected-differences.toml");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let file: ListFile =
            toml_edit::de::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        let known_runs: BTreeSet<&str> = RUNS.iter().map(|run| run.name).collect();
        let mut entries = BTreeMap::new();
        let sections = [
            ("expected", Allowance::Expected, &file.expected),
            (
                "known_proxy_bugs",
                Allowance::KnownProxyBug,
                &file.known_proxy_bugs,
            ),
        ];
        for (section, allowance, list) in sections {
            for entry in list {
                let place = format!("{}: [[{section}]] {:?}", path.display(), entry.test);
                ensure!(
                    schedule.contains(&entry.test),
                    "{place}: no such test in parallel_schedule"
                );
                ensure!(!entry.runs.is_empty(), "{place}: no runs");
                ensure!(
                    entry.reason.trim().len() >= 20,
                    "{place}: say why a pooler cannot match PostgreSQL here"
                );
                ensure!(
                    (allowance == Allowance::KnownProxyBug) == entry.reason.starts_with("proxy bug:"),
                    "{place}: reasons start with \"proxy bug:\" in [[known_proxy_bugs]] and only there"
                );
                for run in &entry.runs {
                    ensure!(
                        known_runs.contains(run.as_str()),
                        "{place}: unknown run {run:?}; the runs are {known_runs:?}"
                    );
                    let previous = entries.insert((run.clone(), entry.test.clone()), allowance);
                    ensure!(previous.is_none(), "{place}: listed twice for {run:?}");
                }
            }
        }
        Ok(Listed { entries })
    }

    fn get(&self, run: &str, test: &str) -> Option<Allowance> {
        self.entries
            .get(&(run.to_string(), test.to_string()))
            .copied()
    }

    fn tests_of<'a>(&'a self, run: &'a str) -> impl Iterator<Item = (&'a str, Allowance)> + 'a {
        self.entries
            .iter()
            .filter(move |((listed_run, _), _)| listed_run == run)
            .map(|((_, test), allowance)| (test.as_str(), *allowance))
    }
}

// --- one run ----------------------------------------------------------------------------

/// What pg_regress reported.
struct Outcome {
    /// test → passed.
    results: BTreeMap<String, bool>,
    /// test → its part of regression.diffs.
    diffs: BTreeMap<String, String>,
    elapsed: Duration,
    /// pg_regress's own output, for when its report is incomplete.
    output: String,
}

async fn run_suite(run: &Run, prepared: &Prepared, inputs: &Path) -> Result<Outcome> {
    let started = Instant::now();
    let server = HostServer::start(&prepared.bindir)?;
    server.create_database().await?;
    let proxy = match run.pool_mode {
        None => None,
        Some(pool_mode) => Some(
            TestProxy::start_at(
                server.addr(),
                ProxyOptions {
                    pool_mode,
                    pool_size: run.pool_size,
                    // A test waits for a connection while parallel tests hold them all.
                    checkout_timeout: Duration::from_secs(120),
                    users: vec![ProxyUser {
                        name: ROLE.to_string(),
                        password: PASSWORD.to_string(),
                        server_password: None,
                    }],
                    database: DATABASE.to_string(),
                    ..ProxyOptions::default()
                },
            )
            .await?,
        ),
    };
    let target = proxy.as_ref().map_or(server.addr(), TestProxy::addr);

    // The server writes some results itself (COPY … TO a file under PG_ABS_BUILDDIR).
    let out = ScratchDir::new("regress-out")?;
    std::fs::create_dir(out.file("results"))?;
    chown_postgres(out.path())?;
    let regress = inputs.join("regress");
    let mut command = tokio::process::Command::new(&prepared.pg_regress);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    command
        .arg("--use-existing")
        .arg(format!("--bindir={}", prepared.bindir.display()))
        .arg(format!("--host={}", target.ip()))
        .arg(format!("--port={}", target.port()))
        .arg(format!("--user={ROLE}"))
        .arg(format!("--dlpath={}", inputs.join("lib").display()))
        .arg(format!("--inputdir={}", regress.display()))
        .arg(format!("--outputdir={}", out.path().display()))
        .arg(format!(
            "--schedule={}",
            regress.join("parallel_schedule").display()
        ))
        .arg("--max-concurrent-tests=20")
        .args((!run.parallel).then_some("--max-connections=1"))
        .arg(format!("--dbname={DATABASE}"))
        .env("PGPASSWORD", PASSWORD)
        .env("PGSSLMODE", "disable")
        .current_dir(out.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(RUN_LIMIT, command.output()).await {
        Ok(output) => output.with_context(|| format!("run {}", prepared.pg_regress.display()))?,
        Err(_) => bail!("{}: pg_regress still running after {RUN_LIMIT:?}", run.name),
    };
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let diffs_text = std::fs::read_to_string(out.file("regression.diffs")).unwrap_or_default();

    let kept = prepared.results_dir().join(run.name.replace(' ', "-"));
    let _ = std::fs::remove_dir_all(&kept);
    std::fs::create_dir_all(&kept)?;
    std::fs::write(kept.join("regression.out"), format!("{stdout}{stderr}"))?;
    std::fs::write(kept.join("regression.diffs"), &diffs_text)?;
    std::fs::write(kept.join("server.log"), server.log())?;

    if let Some(proxy) = proxy {
        proxy.shutdown().await;
    }
    drop(server);
    Ok(Outcome {
        results: parse_results(&stdout),
        diffs: split_diffs(&diffs_text),
        elapsed,
        output: format!("{}\n{}", tail(&stdout, 20), tail(&stderr, 20)),
    })
}

/// pg_regress's lines `test name ... ok 12 ms` and, in groups, `     name ... FAILED 5 ms`.
fn parse_results(stdout: &str) -> BTreeMap<String, bool> {
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.peek() == Some(&"test") {
            words.next();
        }
        let (Some(name), Some("..."), Some(status)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let passed = match status {
            "ok" => true,
            "FAILED" | "failed" => false,
            _ => continue,
        };
        results.insert(name.to_string(), passed);
    }
    results
}

/// regression.diffs cut at its `diff … results/<test>.out` headers.
fn split_diffs(text: &str) -> BTreeMap<String, String> {
    let mut diffs: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("diff ") {
            current = line
                .rsplit('/')
                .next()
                .and_then(|file| file.strip_suffix(".out"))
                .map(str::to_string);
        }
        if let Some(test) = &current {
            let diff = diffs.entry(test.clone()).or_default();
            diff.push_str(line);
            diff.push('\n');
        }
    }
    diffs
}

/// The run's summary line, and what is wrong with it.
fn judge(run: &Run, outcome: &Outcome, schedule: &[String], listed: &Listed) -> Vec<String> {
    let mut problems = Vec::new();
    let missing: Vec<&str> = schedule
        .iter()
        .filter(|test| !outcome.results.contains_key(*test))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{}: pg_regress reported nothing for {} tests ({}); its output ended:\n{}",
            run.name,
            missing.len(),
            missing.join(", "),
            outcome.output
        ));
    }
    let passed = outcome.results.values().filter(|passed| **passed).count();
    let mut failed = Vec::new();
    for (test, _) in outcome.results.iter().filter(|(_, passed)| !**passed) {
        match listed.get(run.name, test) {
            Some(Allowance::Expected) => failed.push(format!("{test} (expected)")),
            Some(Allowance::KnownProxyBug) => failed.push(format!("{test} (known proxy bug)")),
            None => {
                failed.push(format!("{test} (UNEXPECTED)"));
                let diff = outcome
                    .diffs
                    .get(test)
                    .map(|diff| head(diff, DIFF_EXCERPT_LINES))
                    .unwrap_or_else(|| "(no diff: see the run's regression.out)".to_string());
                problems.push(format!(
                    "{}: {test} failed and is not in tests/regress/expected-differences.toml:\n{diff}",
                    run.name
                ));
            }
        }
    }
    let mut line = format!(
        "{}: {passed}/{} passed in {:.0}s",
        run.name,
        schedule.len(),
        outcome.elapsed.as_secs_f64()
    );
    if !failed.is_empty() {
        let _ = write!(line, "; failed: {}", failed.join(", "));
    }
    report(&line);
    for (test, allowance) in listed.tests_of(run.name) {
        if outcome.results.get(test) == Some(&true) {
            let section = match allowance {
                Allowance::Expected => "expected",
                Allowance::KnownProxyBug => "known_proxy_bugs",
            };
            report(&format!(
                "{}: note: {test} passed though [[{section}]] lists it for this run",
                run.name
            ));
        }
    }
    problems
}

// --- the server ---------------------------------------------------------------------------

/// A PostgreSQL 15 cluster of its own in a scratch directory, run by the OS user
/// `postgres`, listening on 127.0.0.1 only and trusting every login there. Stopped and
/// removed when dropped.
struct HostServer {
    bindir: PathBuf,
    data: PathBuf,
    port: u16,
    /// Declared last: removed after `drop` stopped the server.
    scratch: ScratchDir,
}

impl HostServer {
    fn start(bindir: &Path) -> Result<HostServer> {
        ensure!(
            is_root(),
            "the regression suite's server runs as the OS user postgres, started with \
             runuser: run the tests as root"
        );
        let scratch = ScratchDir::new("regress-server")?;
        let data = scratch.file("data");
        std::fs::create_dir(&data)?;
        // The server writes its log beside its data.
        chown_postgres(scratch.path())?;
        let port = free_port()?;
        let server = HostServer {
            bindir: bindir.to_path_buf(),
            data,
            port,
            scratch,
        };
        server.as_postgres(
            "initdb",
            &[
                "--pgdata",
                &server.data.to_string_lossy(),
                "--username",
                ROLE,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        // As `make check`'s temporary instance, plus what a throwaway server can skip.
        let settings = format!(
            "\n# pgshard regression suite\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             max_connections = 100\n\
             max_prepared_transactions = 2\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             log_line_prefix = '%m %b[%p] %q%a '\n\
             log_lock_waits = on\n"
        );
        let conf = server.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new().append(true).open(&conf)?;
        file.write_all(settings.as_bytes())?;
        let log = server.log_path();
        server
            .as_postgres(
                "pg_ctl",
                &[
                    "start",
                    "--wait",
                    "--timeout=60",
                    "--pgdata",
                    &server.data.to_string_lossy(),
                    "--log",
                    &log.to_string_lossy(),
                ],
            )
            .with_context(|| format!("server log:\n{}", tail(&server.log(), 30)))?;
        Ok(server)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log_path(&self) -> PathBuf {
        self.scratch.file("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Creates the database as pg_regress does without `--use-existing` (through the
    /// proxy it cannot: it would connect to the database `postgres` to do it).
    async fn create_database(&self) -> Result<()> {
        let client = connect(self.addr(), &User::new(ROLE, PASSWORD, "postgres"))
            .await
            .context("connect to the regression suite's server")?;
        client
            .simple_query(&format!("CREATE DATABASE {DATABASE} TEMPLATE=template0"))
            .await?;
        for (name, value) in [
            ("lc_messages", "C"),
            ("lc_monetary", "C"),
            ("lc_numeric", "C"),
            ("lc_time", "C"),
            ("bytea_output", "hex"),
            ("timezone_abbreviations", "Default"),
        ] {
            client
                .simple_query(&format!(
                    "ALTER DATABASE {DATABASE} SET {name} TO '{value}'"
                ))
                .await?;
        }
        Ok(())
    }

    /// Runs one of the server's programs as the OS user `postgres`.
    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<()> {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bindir.join(program))
            .args(args)
            .current_dir(self.scratch.path())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {program} through runuser"))?;
        ensure!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let _ = self.as_postgres(
            "pg_ctl",
            &["stop", "--wait", "--mode=immediate", "--pgdata", &data],
        );
    }
}

// --- small things -----------------------------------------------------------------------

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn chown_postgres(path: &Path) -> Result<()> {
    let status = Command::new("chown")
        .arg("-R")
        .arg("postgres:")
        .arg(path)
        .status()
        .context("run chown")?;
    ensure!(status.success(), "chown postgres {} failed", path.display());
    Ok(())
}

fn chmod_readable(path: &Path) -> Result<()> {
    let status = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(path)
        .status()
        .context("run chmod")?;
    ensure!(status.success(), "chmod a+rX {} failed", path.display());
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-R")
        .arg(from)
        .arg(to)
        .status()
        .context("run cp")?;
    ensure!(
        status.success(),
        "cp -R {} {} failed",
        from.display(),
        to.display()
    );
    Ok(())
}

fn head(text: &str, lines: usize) -> String {
    let mut shown: Vec<&str> = text.lines().take(lines).collect();
    let total = text.lines().count();
    if total > lines {
        shown.push("[…]");
    }
    shown.join("\n")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
