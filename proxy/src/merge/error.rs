//! Why a merge of shard results could not be completed.

use thiserror::Error;

use crate::net::messages::error_response_with_detail;
use crate::net::{Frame, Severity};

/// A merge failure, reported to the client as an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergeError {
    /// The shards answered with something the proxy cannot combine exactly (a type it
    /// cannot compare or add): refused rather than answered wrongly.
    #[error("pgshard: {0}")]
    Unsupported(String),
    /// A value a shard sent that does not read as its column's type.
    #[error("pgshard: a shard returned a value that is not a valid {type_name}: {value:?}")]
    BadValue {
        type_name: &'static str,
        value: String,
    },
    /// The shards disagree on the shape of the result.
    #[error("pgshard: the shards returned different result columns")]
    Mismatch,
    /// The error PostgreSQL itself reports for this query or value (a cast out of
    /// range, a cast that does not exist), with its SQLSTATE and DETAIL.
    #[error("{message}")]
    Sql {
        sqlstate: &'static str,
        message: String,
        detail: Option<String>,
    },
}

impl MergeError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            MergeError::Unsupported(_) => "0A000",
            MergeError::BadValue { .. } | MergeError::Mismatch => "XX000",
            MergeError::Sql { sqlstate, .. } => sqlstate,
        }
    }

    /// The ErrorResponse the client gets.
    pub fn response(&self) -> Frame {
        let detail = match self {
            MergeError::Sql { detail, .. } => detail.as_deref(),
            _ => None,
        };
        error_response_with_detail(Severity::Error, self.sqlstate(), &self.to_string(), detail)
    }
}
