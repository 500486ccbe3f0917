//! `pgshard dump` without servers: a database it cannot dump is named with what to do
//! instead, and a dump that fails leaves no file behind, not even a partial one.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A directory of its own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "pgshard-dump-cli-{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a configuration file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration whose database `app` has a shard at each of `primaries`.
fn config(primaries: &[String]) -> String {
    let mut text = "[[users]]\nname = \"app\"\npassword = \"app\"\n\
                    [[databases]]\nname = \"app\"\n\
                    sharded_tables = [{ table = \"t\", column = \"id\" }]\n"
        .to_string();
    for primary in primaries {
        text.push_str(&format!("[[databases.shards]]\nprimary = \"{primary}\"\n"));
    }
    text
}

fn dump(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgshard"))
        .arg("dump")
        .args(args)
        .output()
        .expect("run pgshard")
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An address where nothing listens: a port just given back by the system.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    addr.to_string()
}

#[test]
fn a_one_shard_database_is_left_to_pg_dump() {
    let scratch = Scratch::new("one-shard");
    let path = scratch.write("pgshard.toml", &config(&["127.0.0.1:5432".to_string()]));
    let output = dump(&["--config", &path.display().to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("database \"app\" has one shard: back it up with pg_dump"),
        "{}",
        describe(&output)
    );
    assert!(output.stdout.is_empty(), "{}", describe(&output));
}

#[test]
fn an_unknown_database_is_named_with_the_configured_ones() {
    let scratch = Scratch::new("unknown");
    let path = scratch.write("pgshard.toml", &config(&[closed_port(), closed_port()]));
    let output = dump(&["-c", &path.display().to_string(), "--database", "nope"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no database \"nope\" in the configuration (it has \"app\")"),
        "{}",
        describe(&output)
    );
}

#[test]
fn a_failed_dump_leaves_no_file() {
    let scratch = Scratch::new("unreachable");
    let path = scratch.write("pgshard.toml", &config(&[closed_port(), closed_port()]));
    let file = scratch.0.join("app.sql");
    let output = dump(&[
        "-c",
        &path.display().to_string(),
        "--file",
        &file.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pgshard dump: shard 0 (127.0.0.1:") && stderr.contains("cannot connect"),
        "{}",
        describe(&output)
    );
    let left: Vec<_> = std::fs::read_dir(&scratch.0)
        .expect("list the scratch directory")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "pgshard.toml")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
