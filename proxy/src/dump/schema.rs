//! The schema a sharded database restores: shard 0's, once every shard is shown to hold
//! the same one.
//!
//! DDL through pgshard runs on every shard, so their schemas are alike; one changed
//! behind the proxy's back would make a restore from shard 0's schema inexact for the
//! others, and is reported instead.

/// Lines of a pg_dump script that differ between two runs over the same schema: the
/// server's and pg_dump's versions, and psql's `\restrict` key (random per run).
fn varies_per_run(line: &str) -> bool {
    line.starts_with("-- Dumped from database version")
        || line.starts_with("-- Dumped by pg_dump version")
        || line.starts_with("\\restrict ")
        || line.starts_with("\\unrestrict ")
}

/// The first line (1-based, of `other`) where `other` differs from `first`, with both
/// lines (an empty one past the end of a script).
pub fn first_difference(first: &[u8], other: &[u8]) -> Option<(usize, String, String)> {
    let lines = |script: &[u8]| -> Vec<(usize, String)> {
        String::from_utf8_lossy(script)
            .lines()
            .enumerate()
            .filter(|(_, line)| !varies_per_run(line))
            .map(|(i, line)| (i + 1, line.to_string()))
            .collect()
    };
    let (first, other) = (lines(first), lines(other));
    let end = other.last().map_or(1, |(number, _)| number + 1);
    (0..first.len().max(other.len())).find_map(|i| {
        let a = first.get(i).map(|(_, line)| line.as_str()).unwrap_or("");
        let (number, b) = other
            .get(i)
            .map_or((end, ""), |(number, line)| (*number, line.as_str()));
        (a != b).then(|| (number, a.to_string(), b.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_restrict_keys_are_not_differences() {
        let a = b"--\n-- Dumped from database version 15.18\n\\restrict abc\nCREATE TABLE t ();\n\\unrestrict abc\n";
        let b = b"--\n-- Dumped from database version 15.20\n\\restrict xyz\nCREATE TABLE t ();\n\\unrestrict xyz\n";
        assert_eq!(first_difference(a, b), None);
        let c = b"--\n-- Dumped from database version 15.20\n\\restrict xyz\nCREATE TABLE u ();\n";
        assert_eq!(
            first_difference(a, c),
            Some((4, "CREATE TABLE t ();".into(), "CREATE TABLE u ();".into()))
        );
        let shorter = b"--\n";
        assert_eq!(
            first_difference(a, shorter),
            Some((2, "CREATE TABLE t ();".into(), String::new()))
        );
    }
}
