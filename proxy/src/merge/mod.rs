//! Combining the answers of several shards into the one answer a single PostgreSQL
//! holding all the rows would give: rows ordered, grouped and aggregated by their
//! column types, in text format.
//!
//! Plans come from the router ([`pgshard_router::plan::RowMerge`]); this module works
//! on the rows, and the executor streams them.

pub mod aggregate;
pub mod arithmetic;
pub mod array;
pub mod binary;
pub mod cast;
pub mod compare;
pub mod compute;
pub mod datetime;
pub mod error;
pub mod float_text;
pub mod groups;
pub mod having;
pub mod interval;
pub mod numeric;
pub mod order;
pub mod row;
pub mod value_type;

pub use error::MergeError;
pub use groups::{Groups, SortedGroups};
pub use order::{Admit, RowOrder, SortedRows, Window};
pub use row::{Column, Row, RowDescription};
pub use value_type::ValueType;
