//! pg_dump and pg_dumpall on a sharded database: refused at login, with what to run
//! instead.
//!
//! pg_dump cannot back up a sharded database through the proxy: it prepares its
//! catalog queries with SQL `PREPARE` (one server's session state), reads each
//! sequence's value from one server while every shard has its own copy, and exports
//! snapshots for parallel dumps. It would fail part-way at best; it is told at once to
//! use `pgshard dump`, which dumps every shard directly and merges them into one script
//! that restores through pgshard.

/// The message for a client of a sharded database whose startup `application_name` is
/// pg_dump's or pg_dumpall's (the name libpq sends for them unless told otherwise);
/// `None` for any other client.
pub fn refusal(params: &[(String, String)], database: &str) -> Option<String> {
    let tool = params
        .iter()
        .find(|(name, _)| name == "application_name")
        .map(|(_, value)| value.as_str())
        .filter(|value| matches!(*value, "pg_dump" | "pg_dumpall"))?;
    Some(format!(
        "pgshard: {tool} cannot back up the sharded database \"{database}\" through the proxy \
         (each shard has its own rows and its own copy of every sequence); run \
         `pgshard dump --config <pgshard.toml> --database {database} --file <dump.sql>`, \
         which dumps every shard and writes one script, and restore it with \
         `psql -v ON_ERROR_STOP=1 -f <dump.sql>` through pgshard"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(application_name: &str) -> Vec<(String, String)> {
        vec![
            ("user".to_string(), "app".to_string()),
            ("application_name".to_string(), application_name.to_string()),
        ]
    }

    #[test]
    fn only_pg_dump_and_pg_dumpall_are_refused() {
        let message = refusal(&params("pg_dump"), "app").unwrap_or_default();
        assert!(message.contains("pgshard dump --config"), "{message}");
        assert!(message.contains("--database app"), "{message}");
        assert!(refusal(&params("pg_dumpall"), "app").is_some());
        assert!(refusal(&params("psql"), "app").is_none());
        assert!(refusal(&params("pg_restore"), "app").is_none());
        assert!(refusal(&[], "app").is_none());
    }
}
