//! Why a statement gets no plan, shaped for an ErrorResponse.

use crate::error::HintError;
use crate::sharding::ShardingError;
use thiserror::Error;

/// A statement the planner cannot place on shards, or would place wrongly.
///
/// The data plane answers the statement with an ErrorResponse carrying
/// [`PlanError::sqlstate`] and the message, and sends nothing to any shard.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// No exact answer can be assembled from the shards; the message starts with
    /// `pgshard: ` and says what to do instead.
    #[error("{0}")]
    Unsupported(String),
    /// A shard key that cannot be read, or that no shard holds.
    #[error(transparent)]
    Sharding(#[from] ShardingError),
    /// The statement does not parse; sqlparser's message.
    #[error("{0}")]
    Syntax(String),
    /// A `/* pgshard: … */` hint with a bad value.
    #[error(transparent)]
    Hint(#[from] HintError),
    /// A `shard=N` hint or `SET pgshard.shard = N` past the last shard.
    #[error(
        "pgshard: there is no shard {shard}: the database has {shards} shards, numbered from 0"
    )]
    NoSuchShard { shard: usize, shards: usize },
    /// A `shard=N` hint or `SET pgshard.shard = N` on a statement whose shard key puts
    /// it on other shards.
    #[error(
        "pgshard: the statement is forced to shard {shard}, but its shard key puts it on shard {}: \
         a row there would never be found by key; remove the shard=N hint or RESET \
         pgshard.shard (the key routes it), or change the key",
        keyed.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
    )]
    OverrideMisplaces { shard: usize, keyed: Vec<usize> },
    /// The statement uses `$n` but Bind sent fewer parameters.
    #[error("bind message supplies {supplied} parameters, but the statement uses ${needed}")]
    MissingParameter { needed: usize, supplied: usize },
    /// A LIMIT or OFFSET parameter that is not a usable row count.
    #[error("{0}")]
    RowCount(RowCountError),
    /// A COPY data row that cannot be read (e.g. an unterminated CSV quote).
    #[error("{0}")]
    CopyData(String),
    /// An INSERT into a sharded table without a column list: the data plane reads the
    /// table's columns (see [`super::columns_query`]) and plans it again with them named.
    #[error("pgshard: INSERT into sharded table {table} without a column list: name the columns")]
    ColumnsNeeded { table: String },
}

/// A bad LIMIT or OFFSET value, worded as PostgreSQL words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCountError {
    NegativeLimit,
    NegativeOffset,
    /// Not a bigint (text that does not parse, or binary of the wrong width).
    Invalid,
}

impl std::fmt::Display for RowCountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RowCountError::NegativeLimit => "LIMIT must not be negative",
            RowCountError::NegativeOffset => "OFFSET must not be negative",
            RowCountError::Invalid => "invalid input syntax for type bigint",
        })
    }
}

impl PlanError {
    /// The SQLSTATE to report: 0A000 (feature_not_supported) for refusals, 42601
    /// (syntax_error), 22023 (invalid_parameter_value) for a shard that does not exist,
    /// 08P01 (protocol_violation) for missing parameters, 2201W / 2201X for negative
    /// LIMIT / OFFSET, 22P04 (bad_copy_file_format), and the key's or hint's own code.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PlanError::Unsupported(_) => "0A000",
            PlanError::Sharding(error) => error.sqlstate(),
            PlanError::Syntax(_) => "42601",
            PlanError::Hint(error) => error.sqlstate(),
            PlanError::NoSuchShard { .. } | PlanError::OverrideMisplaces { .. } => "22023",
            PlanError::MissingParameter { .. } => "08P01",
            PlanError::RowCount(RowCountError::NegativeLimit) => "2201W",
            PlanError::RowCount(RowCountError::NegativeOffset) => "2201X",
            PlanError::RowCount(RowCountError::Invalid) => "22P02",
            PlanError::CopyData(_) => "22P04",
            PlanError::ColumnsNeeded { .. } => "0A000",
        }
    }
}

/// The advice that ends refusals of fan-out queries; the planner names the keys in
/// it (see [`super::routing::name_keys`]).
pub(crate) const FILTER_ON_KEY: &str = "filter on the shard key to run on one shard";

/// A refusal: `message` without the `pgshard: ` prefix.
pub(crate) fn unsupported(message: impl std::fmt::Display) -> PlanError {
    PlanError::Unsupported(format!("pgshard: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(unsupported("no").sqlstate(), "0A000");
        assert_eq!(unsupported("no").to_string(), "pgshard: no");
        let error = PlanError::NoSuchShard {
            shard: 3,
            shards: 2,
        };
        assert_eq!(error.sqlstate(), "22023");
        assert!(error.to_string().contains("2 shards"));
        assert_eq!(
            PlanError::from(ShardingError::NoShardForKey { value: "1".into() }).sqlstate(),
            "23514"
        );
        assert_eq!(
            PlanError::RowCount(RowCountError::NegativeLimit).sqlstate(),
            "2201W"
        );
    }
}
