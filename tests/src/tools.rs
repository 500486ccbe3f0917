//! The PostgreSQL command-line tools (`psql`, `pgbench`) of the host, run against any
//! address the tests know.

use std::io;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::error::{HarnessError, Result};
use crate::user::User;

/// What a tool printed and how it ended.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// Both streams, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program args…` with libpq's environment pointing at `addr` as `user`
/// (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`), and kills it after `limit`.
///
/// The environment is cleared of other `PG*` variables so that nothing of the machine's
/// own set-up (a service file, a TLS mode) changes what the tool does.
pub async fn run_tool(
    program: &str,
    addr: SocketAddr,
    user: &User,
    args: &[&str],
    limit: Duration,
) -> Result<ToolOutput> {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env("PGHOST", addr.ip().to_string())
        .env("PGPORT", addr.port().to_string())
        .env("PGUSER", &user.name)
        .env("PGPASSWORD", &user.password)
        .env("PGDATABASE", &user.database)
        .env("PGCONNECT_TIMEOUT", "5")
        .env("PGSSLMODE", "disable")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let action = format!("run {program}");
    let output = match tokio::time::timeout(limit, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) if source.kind() == io::ErrorKind::NotFound => {
            return Err(HarnessError::Io {
                action: format!(
                    "{action}: it is not on PATH; install the PostgreSQL 15 client tools \
                     (Debian: apt-get install postgresql-client-15 postgresql-contrib)"
                ),
                source,
            })
        }
        Ok(Err(source)) => return Err(HarnessError::Io { action, source }),
        Err(_) => {
            return Err(HarnessError::Io {
                action,
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("still running after {limit:?}"),
                ),
            })
        }
    };
    Ok(ToolOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
