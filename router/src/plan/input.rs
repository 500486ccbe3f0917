//! What a plan depends on besides the statement text: Bind parameters and the
//! session's forced shard.

use super::error::{PlanError, RowCountError};
use crate::sharding::ParamFormat;

/// The parameter values of a Bind message.
#[derive(Debug, Clone, Copy)]
pub struct BoundParams<'a> {
    /// One entry per parameter; `None` is NULL.
    pub values: &'a [Option<&'a [u8]>],
    /// One format per value, already resolved from Bind's 0, 1 or n format codes.
    pub formats: &'a [ParamFormat],
}

/// The per-execution input of [`super::Planner::plan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanInput<'a> {
    /// `None` for a simple query, or an extended-protocol statement not bound yet
    /// (Describe): keys given as parameters are then unknown.
    pub params: Option<BoundParams<'a>>,
    /// The session's `SET pgshard.shard = N`.
    pub shard_override: Option<usize>,
}

impl<'a> BoundParams<'a> {
    /// Parameter `index` (0-based: `$1` is 0) and its format.
    pub(crate) fn get(&self, index: usize) -> Result<(ParamFormat, Option<&'a [u8]>), PlanError> {
        let missing = || PlanError::MissingParameter {
            needed: index + 1,
            supplied: self.values.len(),
        };
        let value = *self.values.get(index).ok_or_else(missing)?;
        let format = self
            .formats
            .get(index)
            .copied()
            .unwrap_or(ParamFormat::Text);
        Ok((format, value))
    }

    /// Parameter `index` read as a bigint row count; NULL is `None` (no limit).
    pub(crate) fn row_count(&self, index: usize) -> Result<Option<i64>, PlanError> {
        let invalid = PlanError::RowCount(RowCountError::Invalid);
        let (format, value) = self.get(index)?;
        let Some(bytes) = value else {
            return Ok(None);
        };
        let count = match format {
            ParamFormat::Text => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok()),
            ParamFormat::Binary => match *bytes {
                [a, b] => Some(i16::from_be_bytes([a, b]).into()),
                [a, b, c, d] => Some(i32::from_be_bytes([a, b, c, d]).into()),
                [a, b, c, d, e, f, g, h] => Some(i64::from_be_bytes([a, b, c, d, e, f, g, h])),
                _ => None,
            },
        };
        count.map(Some).ok_or(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parameters_and_row_counts() {
        let values = [Some(&b"10"[..]), None, Some(&[0, 0, 0, 7][..])];
        let formats = [ParamFormat::Text, ParamFormat::Text, ParamFormat::Binary];
        let params = BoundParams {
            values: &values,
            formats: &formats,
        };
        assert_eq!(params.row_count(0), Ok(Some(10)));
        assert_eq!(params.row_count(1), Ok(None));
        assert_eq!(params.row_count(2), Ok(Some(7)));
        assert_eq!(
            params.get(3).unwrap_err(),
            PlanError::MissingParameter {
                needed: 4,
                supplied: 3
            }
        );
    }
}
