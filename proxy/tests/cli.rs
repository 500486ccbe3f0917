//! The `pgshard` command: `check` accepts a valid file and rejects a bad one, naming the
//! file, line and key of every problem.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VALID: &str = r#"[proxy]
listen = "127.0.0.1:6432"
pool_size = 5

[[users]]
name = "app"
password = "secret"

[[databases]]
name = "app"

[[databases.shards]]
primary = "127.0.0.1:5432"
"#;

/// A directory of its own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "pgshard-cli-{label}-{}-{:?}",
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

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgshard"))
        .arg("check")
        .arg("--config")
        .arg(config)
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

#[test]
fn check_accepts_a_valid_file() {
    let scratch = Scratch::new("valid");
    let path = scratch.write("pgshard.toml", VALID);
    let output = check(&path);
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{}: configuration is valid", path.display()),
        "{}",
        describe(&output)
    );
}

#[test]
fn check_accepts_the_documented_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/pgshard.example.toml");
    let output = check(&example);
    assert!(output.status.success(), "{}", describe(&output));
}

/// Asserts that `check` fails and reports an error at `line` of `path` naming `key`, for
/// every `(line, key)` of `expected`.
fn assert_rejected(path: &Path, expected: &[(usize, &str)]) {
    let output = check(path);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (line, key) in expected {
        let located = format!("{}:{line}:", path.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&located) && l.contains(key)),
            "no error at {located} naming {key}: {}",
            describe(&output)
        );
    }
}

#[test]
fn check_rejects_a_misspelt_key_naming_file_line_and_key() {
    let scratch = Scratch::new("misspelt");
    let bad = VALID.replace("pool_size = 5\n", "pool_size = 5\npool_sise = 3\n");
    let path = scratch.write("bad.toml", &bad);
    assert_rejected(&path, &[(4, "proxy.pool_sise")]);
}

#[test]
fn check_rejects_out_of_range_values_naming_every_one() {
    let scratch = Scratch::new("values");
    let bad = VALID.replace(
        "pool_size = 5\n",
        "pool_size = 0\nmax_client_connections = 0\n",
    );
    let path = scratch.write("bad.toml", &bad);
    assert_rejected(
        &path,
        &[(3, "proxy.pool_size"), (4, "proxy.max_client_connections")],
    );
}

#[test]
fn check_rejects_a_bad_address_naming_its_line_and_key() {
    let scratch = Scratch::new("address");
    let bad = VALID.replace("127.0.0.1:5432", "127.0.0.1:notaport");
    let path = scratch.write("bad.toml", &bad);
    assert_rejected(&path, &[(13, "databases[0].shards[0].primary")]);
}

#[test]
fn check_rejects_a_missing_file_naming_it() {
    let scratch = Scratch::new("missing");
    let path = scratch.0.join("nowhere.toml");
    let output = check(&path);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&path.display().to_string()),
        "{}",
        describe(&output)
    );
}
