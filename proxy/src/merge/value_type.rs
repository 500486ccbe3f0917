//! The column types whose text values the proxy can compare and combine.

/// A result column's type, as far as merging is concerned: how its text values order
/// and add. Read from the RowDescription's type OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// int2, int4, int8, oid
    Int {
        oid: u32,
    },
    /// float4 (`single`) or float8
    Float {
        single: bool,
    },
    Numeric,
    /// text, varchar, name, and char: bytewise, as the "C" collation orders UTF-8.
    Text,
    /// char(n): like text, but trailing blanks do not count.
    Bpchar,
    Bool,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    /// interval: ordered and grouped by its span (a month counts 30 days).
    Interval,
    /// An array of integers, text, booleans, uuids, dates, bytea, names or oids (`oid` is
    /// the array type's): ordered element by element, grouped by its text.
    Array {
        oid: u32,
    },
    /// Any other type: rows of it pass through, but the proxy cannot order or add them.
    Other {
        oid: u32,
    },
}

impl ValueType {
    pub fn from_oid(oid: u32) -> ValueType {
        match oid {
            20 | 21 | 23 | 26 => ValueType::Int { oid },
            700 => ValueType::Float { single: true },
            701 => ValueType::Float { single: false },
            1700 => ValueType::Numeric,
            25 | 1043 | 19 => ValueType::Text,
            1042 => ValueType::Bpchar,
            16 => ValueType::Bool,
            1082 => ValueType::Date,
            1083 => ValueType::Time,
            1114 => ValueType::Timestamp,
            1184 => ValueType::TimestampTz,
            2950 => ValueType::Uuid,
            1186 => ValueType::Interval,
            oid if super::array::element_oid(oid).is_some() => ValueType::Array { oid },
            oid => ValueType::Other { oid },
        }
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int { oid: 21 } => "smallint",
            ValueType::Int { oid: 23 } => "integer",
            ValueType::Int { oid: 26 } => "oid",
            ValueType::Int { .. } => "bigint",
            ValueType::Float { single: true } => "real",
            ValueType::Float { single: false } => "double precision",
            ValueType::Numeric => "numeric",
            ValueType::Text => "text",
            ValueType::Bpchar => "character",
            ValueType::Bool => "boolean",
            ValueType::Date => "date",
            ValueType::Time => "time",
            ValueType::Timestamp => "timestamp",
            ValueType::TimestampTz => "timestamptz",
            ValueType::Uuid => "uuid",
            ValueType::Interval => "interval",
            ValueType::Array { .. } => "array",
            ValueType::Other { .. } => "this type",
        }
    }
}
