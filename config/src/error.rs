//! Errors reported for a configuration file.

use std::fmt;

/// One problem in a configuration file, located precisely enough that an
/// operator can fix it without guessing: file, line, column and key.
///
/// Displays as `pgshard.toml:12:1: proxy.pool_size: must be at least 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to [`crate::load`] or [`crate::parse`].
    pub file: String,
    /// 1-based; 0 when the file itself could not be read.
    pub line: usize,
    /// 1-based, in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted key path with array indexes, e.g. `databases[0].shards[1].primary`;
    /// empty when the problem is not inside a key (syntax errors, unreadable file).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one configuration file, in file order, so that
/// `pgshard check` can report them all in one round instead of one per run.
///
/// Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, key: &str) -> ConfigError {
        ConfigError {
            file: "pgshard.toml".into(),
            line,
            column: if line > 0 { 1 } else { 0 },
            key: key.into(),
            message: "must be at least 1".into(),
        }
    }

    #[test]
    fn display_has_file_line_column_key_and_message() {
        assert_eq!(
            error(12, "proxy.pool_size").to_string(),
            "pgshard.toml:12:1: proxy.pool_size: must be at least 1"
        );
    }

    #[test]
    fn display_leaves_out_what_is_unknown() {
        assert_eq!(
            error(3, "").to_string(),
            "pgshard.toml:3:1: must be at least 1"
        );
        assert_eq!(error(0, "").to_string(), "pgshard.toml: must be at least 1");
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ConfigErrors(vec![error(1, "users"), error(2, "databases")]);
        assert_eq!(
            errors.to_string(),
            "pgshard.toml:1:1: users: must be at least 1\n\
             pgshard.toml:2:1: databases: must be at least 1"
        );
    }
}
