//! The optional `rejoin_command`: when a fenced old primary (a node that says it is a
//! primary on an older timeline than the shard's primary) is seen, the operator's command
//! is run to make it a standby of the current primary (pg_rewind, standby.signal,
//! restart). It runs in the background so health checks go on, at most once per fencing
//! event of a node, and again only after a back-off if the node is still a fenced primary
//! once it finished. A failing command is logged and the node stays fenced.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::node_status::NodeRole;
use crate::tasks::Tasks;
use crate::topology::ShardTopology;

/// After a run, how long a node that is still a fenced primary waits before the next.
pub const REJOIN_BACKOFF: Duration = Duration::from_secs(60);

/// How much of the command's output is logged: the last lines of each stream.
const OUTPUT_TAIL_LINES: usize = 20;

/// The operator's command from `[databases.failover]`, ready to expand and run.
#[derive(Debug, Clone)]
pub struct RejoinCommand {
    /// The template with `%h %p %H %P %d` placeholders (validated with the configuration).
    pub template: String,
    pub timeout: Duration,
    /// The database name, for `%d`.
    pub database: String,
}

/// Where the command stands for one node.
#[derive(Debug, Default)]
enum NodeRejoin {
    /// Not fenced, or fenced and not yet acted on.
    #[default]
    Idle,
    Running(JoinHandle<()>),
    /// The last run ended (`at`, as the monitor noticed); another waits for the back-off.
    Finished {
        at: Instant,
    },
}

/// Runs the rejoin command for the fenced primaries of one shard, remembering per node
/// whether a run is going on or has just ended, so a node that stays fenced for a while
/// does not get the command on every round.
#[derive(Debug)]
pub struct Rejoiner {
    command: RejoinCommand,
    nodes: Vec<NodeRejoin>,
    backoff: Duration,
    /// Where runs are spawned: a stopping proxy kills a run still going.
    tasks: Tasks,
}

impl Rejoiner {
    pub fn new(command: RejoinCommand, tasks: Tasks) -> Rejoiner {
        Rejoiner {
            command,
            nodes: Vec::new(),
            backoff: REJOIN_BACKOFF,
            tasks,
        }
    }

    /// After a round: starts the command for each node of `t` that is a reachable,
    /// fenced primary and has no run going on or too recently ended; forgets the runs of
    /// nodes that are no longer fenced (the next fencing is a new event).
    pub fn after_round(&mut self, t: &ShardTopology) {
        let Some(primary) = t.primary else {
            return;
        };
        self.nodes.resize_with(t.nodes.len(), NodeRejoin::default);
        for (i, node) in t.nodes.iter().enumerate() {
            let state = &mut self.nodes[i];
            if let NodeRejoin::Running(handle) = state {
                if handle.is_finished() {
                    *state = NodeRejoin::Finished { at: Instant::now() };
                }
            }
            if !node.fenced {
                if !matches!(state, NodeRejoin::Running(_)) {
                    *state = NodeRejoin::Idle;
                }
                continue;
            }
            let fenced_primary =
                i != primary && node.reachable && node.role == Some(NodeRole::Primary);
            let due = match state {
                NodeRejoin::Idle => true,
                NodeRejoin::Running(_) => false,
                NodeRejoin::Finished { at } => at.elapsed() >= self.backoff,
            };
            if fenced_primary && due {
                let line = expand(&self.command, &node.addr, &t.nodes[primary].addr);
                tracing::warn!(node = %node.addr, primary = %t.nodes[primary].addr, command = %line, "running rejoin_command for the fenced old primary");
                let (addr, timeout) = (node.addr.clone(), self.command.timeout);
                // Dropped when stopped, and with it the child: kill_on_drop kills it.
                let task = self.tasks.spawn_stoppable(run(addr, line, timeout));
                *state = NodeRejoin::Running(task);
            }
        }
    }
}

/// The command line of `command` for fenced node `node` and primary `primary`.
fn expand(command: &RejoinCommand, node: &str, primary: &str) -> String {
    let (h, p) = host_port(node);
    let (ph, pp) = host_port(primary);
    let expanded = pgshard_config::expand_placeholders(&command.template, |c| {
        Some(match c {
            'h' => h.to_string(),
            'p' => p.to_string(),
            'H' => ph.to_string(),
            'P' => pp.to_string(),
            'd' => command.database.clone(),
            _ => return None,
        })
    });
    // Validation refused every other template at start-up.
    expanded.unwrap_or_else(|_| command.template.clone())
}

/// `host:port` split at the last colon, without IPv6 brackets; a missing port is 5432.
fn host_port(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (addr, "5432"),
    }
}

/// Runs `line` through `sh -c` for the fenced node `addr`, killing it after `timeout`,
/// and logs how it ended with the tail of its output.
async fn run(addr: String, line: String, timeout: Duration) {
    let started = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(node = %addr, "rejoin_command could not start: {e}; the node stays fenced");
            return;
        }
    };
    // On timeout the future, and with it the child, is dropped: kill_on_drop kills it.
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            tracing::warn!(node = %addr, duration = ?started.elapsed(), "rejoin_command failed: {e}; the node stays fenced");
            return;
        }
        Err(_) => {
            tracing::warn!(node = %addr, ?timeout, "rejoin_command timed out and was killed; the node stays fenced");
            return;
        }
    };
    let duration = started.elapsed();
    let stdout = tail(&output.stdout);
    let stderr = tail(&output.stderr);
    if output.status.success() {
        tracing::warn!(node = %addr, ?duration, status = %output.status, %stdout, %stderr, "rejoin_command succeeded; the node is used again once it streams from the primary");
    } else {
        tracing::warn!(node = %addr, ?duration, status = %output.status, %stdout, %stderr, "rejoin_command failed; the node stays fenced");
    }
}

/// The last [`OUTPUT_TAIL_LINES`] lines of `bytes`, as text.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let from = lines.len().saturating_sub(OUTPUT_TAIL_LINES);
    lines[from..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::record;
    use crate::probe::tests::reading;

    /// Node 0 fenced on timeline 1, node 1 the primary on timeline 2.
    fn fenced_shard() -> ShardTopology {
        let mut t = ShardTopology::new("n0:5432", &["n1:6000".into()]);
        for (i, timeline) in [(0, 1), (1, 2)] {
            let mut r = reading(NodeRole::Primary, 100);
            r.timeline = Some(timeline);
            record(&mut t.nodes[i], &Ok(r));
        }
        t.primary = Some(1);
        t.nodes[0].fenced = true;
        t
    }

    fn rejoiner(template: &str, dir: &std::path::Path) -> Rejoiner {
        Rejoiner::new(
            RejoinCommand {
                template: format!("cd {} && {template}", dir.display()),
                timeout: Duration::from_secs(5),
                database: "app".into(),
            },
            Tasks::default(),
        )
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pgshard-rejoin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map(|_| dir)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn runs(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    async fn settle(r: &mut Rejoiner) {
        for state in &mut r.nodes {
            if let NodeRejoin::Running(handle) = state {
                let _ = handle.await;
                *state = NodeRejoin::Finished { at: Instant::now() };
            }
        }
    }

    #[test]
    fn placeholders_are_the_configured_addresses() {
        let c = RejoinCommand {
            template: "x %h %p %H %P %d".into(),
            timeout: Duration::from_secs(1),
            database: "app".into(),
        };
        assert_eq!(
            expand(&c, "n0:5432", "[::1]:6000"),
            "x n0 5432 ::1 6000 app"
        );
        assert_eq!(expand(&c, "n0", "n1:6000"), "x n0 5432 n1 6000 app");
    }

    #[tokio::test]
    async fn runs_once_per_fencing_event_and_again_after_the_backoff() {
        let dir = scratch("once");
        let mut r = rejoiner("echo %h:%p-%H:%P >> runs", &dir);
        let mut t = fenced_shard();
        r.after_round(&t);
        r.after_round(&t);
        settle(&mut r).await;
        r.after_round(&t);
        assert_eq!(runs(&dir), ["n0:5432-n1:6000"]);
        // Still a fenced primary once the back-off passed: once more.
        r.backoff = Duration::ZERO;
        r.after_round(&t);
        settle(&mut r).await;
        assert_eq!(runs(&dir).len(), 2);
        // Rejoined (no longer fenced), then fenced again: a new event runs at once.
        r.backoff = REJOIN_BACKOFF;
        t.nodes[0].fenced = false;
        r.after_round(&t);
        t.nodes[0].fenced = true;
        r.after_round(&t);
        settle(&mut r).await;
        assert_eq!(runs(&dir).len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn never_runs_for_an_unreachable_or_unfenced_node() {
        let dir = scratch("never");
        let mut r = rejoiner("echo run >> runs", &dir);
        let mut t = fenced_shard();
        t.nodes[0].reachable = false;
        r.after_round(&t);
        t.nodes[0].reachable = true;
        t.nodes[0].fenced = false;
        r.after_round(&t);
        settle(&mut r).await;
        assert!(runs(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let started = Instant::now();
        run(
            "n0:5432".into(),
            "sleep 30".into(),
            Duration::from_millis(200),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A run still going when the shard's tasks stop is killed, not waited out.
    #[tokio::test]
    async fn a_stop_kills_a_run_still_going() {
        let dir = scratch("stop");
        let mut r = rejoiner("sleep 30", &dir);
        let tasks = r.tasks.clone();
        r.after_round(&fenced_shard());
        assert_eq!(tasks.tracker().len(), 1);
        let started = Instant::now();
        tasks.stop().cancel();
        tasks.tracker().close();
        tasks.tracker().wait().await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keeps_the_tail_of_the_output() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let t = tail(text.as_bytes());
        assert!(t.starts_with("line 10\n") && t.ends_with("line 29"), "{t}");
    }
}
