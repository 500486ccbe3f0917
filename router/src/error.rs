//! Errors in pgshard's own settings and hints, shaped for reporting to the client.

use thiserror::Error;

/// A `SET pgshard.*` or `/* pgshard: … */` the proxy cannot obey.
///
/// The data plane answers the statement with an ErrorResponse instead of running it,
/// so each variant carries the SQLSTATE PostgreSQL itself uses for the same mistake
/// on an ordinary setting; the messages follow PostgreSQL's wording too.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HintError {
    /// A known key with a value it does not take, e.g. `role=leader`.
    #[error("invalid value for parameter \"pgshard.{key}\": \"{value}\"")]
    InvalidValue {
        /// The key without its `pgshard.` prefix.
        key: &'static str,
        value: String,
        /// The values the key takes, for the error's HINT field.
        allowed: &'static str,
    },
    /// `SET pgshard.<name>` / `RESET` / `SHOW` of a name pgshard does not know.
    #[error("unrecognized configuration parameter \"{name}\"")]
    UnknownParameter { name: String },
    /// A `SET`, `RESET` or `SHOW` of a pgshard parameter that is not well formed,
    /// e.g. `SET pgshard.role 'primary'` (no `=` or `TO`) or a list of values.
    #[error("syntax error in {statement}")]
    Syntax {
        /// The statement's start, e.g. `SET pgshard.role`.
        statement: String,
    },
}

impl HintError {
    /// The SQLSTATE to report: 22023 (invalid_parameter_value), 42704
    /// (undefined_object) or 42601 (syntax_error).
    pub fn sqlstate(&self) -> &'static str {
        match self {
            HintError::InvalidValue { .. } => "22023",
            HintError::UnknownParameter { .. } => "42704",
            HintError::Syntax { .. } => "42601",
        }
    }

    /// The text for the error's HINT field, if any.
    pub fn hint(&self) -> Option<String> {
        match self {
            HintError::InvalidValue { allowed, .. } => {
                Some(format!("Available values: {allowed}."))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_codes_and_hints_follow_postgresql() {
        let invalid = HintError::InvalidValue {
            key: "role",
            value: "leader".into(),
            allowed: "primary, replica, auto",
        };
        assert_eq!(
            invalid.to_string(),
            "invalid value for parameter \"pgshard.role\": \"leader\""
        );
        assert_eq!(invalid.sqlstate(), "22023");
        assert_eq!(
            invalid.hint().as_deref(),
            Some("Available values: primary, replica, auto.")
        );
        let unknown = HintError::UnknownParameter {
            name: "pgshard.rol".into(),
        };
        assert_eq!(
            unknown.to_string(),
            "unrecognized configuration parameter \"pgshard.rol\""
        );
        assert_eq!(unknown.sqlstate(), "42704");
        assert_eq!(unknown.hint(), None);
    }
}
