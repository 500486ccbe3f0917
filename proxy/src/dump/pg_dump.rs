//! Running pg_dump against one shard, inside the snapshot held there, and reading its
//! plain-text script line by line.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use super::error::DumpError;
use super::source::DumpSource;

/// The pg_dump program and the options every run gets.
#[derive(Debug, Clone)]
pub struct PgDump {
    pub program: PathBuf,
    /// `--no-owner`, `--no-privileges`: what the user asked for.
    pub options: Vec<String>,
}

/// A pg_dump process whose script is being read.
pub struct PgDumpRun {
    shard: usize,
    addr: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: JoinHandle<Vec<u8>>,
}

impl PgDump {
    /// Starts pg_dump against shard `shard` in snapshot `snapshot`, with `section_args`
    /// (`--section=pre-data`, `--data-only`, …). The script is plain SQL in UTF-8.
    pub fn start(
        &self,
        source: &DumpSource,
        shard: usize,
        snapshot: &str,
        section_args: &[&str],
    ) -> Result<PgDumpRun, DumpError> {
        let mut command = Command::new(&self.program);
        command
            .arg("--format=plain")
            .arg("--encoding=UTF8")
            .arg("--no-password")
            .arg(format!("--snapshot={snapshot}"))
            .args(section_args)
            .args(&self.options)
            .envs(source.libpq_env(shard))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = self.program.display().to_string();
        let mut child = command.spawn().map_err(|e| DumpError::Spawn {
            program: program.clone(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "not found; install PostgreSQL's client programs (at least the servers' major \
                 version), or name pg_dump with --pg-dump"
                    .to_string()
            } else {
                e.to_string()
            },
        })?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(DumpError::Spawn {
                program,
                reason: "its output could not be read".to_string(),
            });
        };
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text).await;
            text
        });
        Ok(PgDumpRun {
            shard,
            addr: source
                .primary(shard)
                .map(ToString::to_string)
                .unwrap_or_default(),
            child,
            stdout: BufReader::with_capacity(256 << 10, stdout),
            stderr,
        })
    }
}

impl PgDumpRun {
    /// Reads the next line of the script into `line` (cleared first), with its `\n`;
    /// `false` at the end of the script.
    pub async fn read_line(&mut self, line: &mut Vec<u8>) -> Result<bool, DumpError> {
        line.clear();
        match self.stdout.read_until(b'\n', line).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(DumpError::PgDump {
                shard: self.shard,
                addr: self.addr.clone(),
                status: "unreadable output".to_string(),
                stderr: e.to_string(),
            }),
        }
    }

    /// The whole script.
    pub async fn read_all(mut self) -> Result<Vec<u8>, DumpError> {
        let mut script = Vec::new();
        if let Err(e) = self.stdout.read_to_end(&mut script).await {
            return Err(DumpError::PgDump {
                shard: self.shard,
                addr: self.addr.clone(),
                status: "unreadable output".to_string(),
                stderr: e.to_string(),
            });
        }
        self.finish().await?;
        Ok(script)
    }

    /// Waits for pg_dump to end; its failure (with what it printed) is an error.
    pub async fn finish(mut self) -> Result<(), DumpError> {
        let status = self.child.wait().await;
        let stderr = self.stderr.await.unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).trim_end().to_string();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(DumpError::PgDump {
                shard: self.shard,
                addr: self.addr,
                status: status.to_string(),
                stderr,
            }),
            Err(e) => Err(DumpError::PgDump {
                shard: self.shard,
                addr: self.addr,
                status: e.to_string(),
                stderr,
            }),
        }
    }
}
