//! Why a merge of shard results could not be completed.

use thiserror::Error;

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
}

impl MergeError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            MergeError::Unsupported(_) => "0A000",
            MergeError::BadValue { .. } | MergeError::Mismatch => "XX000",
        }
    }
}
