//! What a plan for a sharded database says: which shards run a statement, what they are
//! sent, and how their answers become the one answer the client gets.
//!
//! These types are the contract between the planner (pure, here) and the data plane,
//! which sends the statements and merges the replies row by row.

/// Which shards a statement runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardTarget {
    /// These shards (sorted, no duplicates, never empty): the key (or a `shard=` hint)
    /// names them.
    Shards(Vec<usize>),
    /// Every shard: no key restricts the statement, or it must run everywhere (DDL,
    /// writes to replicated tables).
    All,
    /// Any single shard gives the right answer: a read of replicated tables or of the
    /// catalog, or a statement that reads no table at all.
    AnyOne,
}

/// What each targeted shard is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardStatements {
    /// The client's statement, unchanged (with the client's parameters).
    Original,
    /// One new text for every targeted shard, with the client's parameters unchanged: a
    /// fan-out SELECT rewritten for merging (LIMIT pushed down, `avg` split into sum and
    /// count, hidden columns appended for ORDER BY, GROUP BY and HAVING).
    Rewritten(String),
    /// A different statement per shard: a multi-row INSERT split by key.
    PerShard(Vec<ShardStatement>),
}

/// One shard's part of a split statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatement {
    pub shard: usize,
    pub sql: String,
    /// The client's parameters this statement takes, as 0-based indexes in the client's
    /// order: `$1` here is the client's parameter `params[0] + 1`, and so on. Empty when
    /// the client sent none.
    pub params: Vec<usize>,
}

/// How the replies of the targeted shards are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultMerge {
    /// One shard runs the statement: its replies go to the client unchanged.
    PassThrough,
    /// Rows of a query, combined as [`RowMerge`] says.
    Rows(RowMerge),
    /// INSERT, UPDATE, DELETE (and MERGE): the row counts of the command tags are
    /// summed ("INSERT 0 n", "UPDATE n", "DELETE n"); RETURNING rows are concatenated.
    Counts,
    /// Every shard runs it and must succeed (DDL, broadcast utility statements): the
    /// client gets the first shard's reply once.
    Same,
}

/// How the rows of a fan-out query are combined into exactly what one server holding
/// all the rows would return.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowMerge {
    /// Grouping and aggregates, applied first. `None`: rows are taken as they come.
    pub group: Option<Grouping>,
    /// Applied to merged groups; only with `group`.
    pub having: Option<Predicate>,
    /// The final order. Without `group`, each shard returns its rows in this order
    /// already (the rewrite keeps ORDER BY) and the data plane merges the streams; with
    /// `group`, the merged groups are sorted.
    pub order_by: Vec<SortKey>,
    /// Rows skipped after merging (the shards were sent no OFFSET).
    pub offset: u64,
    /// Rows returned after the offset, if limited (the shards were sent `LIMIT limit +
    /// offset` when that is correct, i.e. without `group`).
    pub limit: Option<u64>,
    /// The client sees columns `0..output_columns`; later ones were appended by the
    /// rewrite for ORDER BY, GROUP BY, HAVING or avg and are dropped.
    pub output_columns: usize,
}

/// One ORDER BY item, by result column (0-based, hidden columns included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub column: usize,
    pub descending: bool,
    /// PostgreSQL's default: NULLS FIRST for DESC, NULLS LAST for ASC.
    pub nulls_first: bool,
}

/// GROUP BY (or DISTINCT, or aggregates without GROUP BY): rows with equal `keys`
/// become one, and each aggregate column is combined across them.
///
/// Every result column is either a key or an aggregate (or the count column of an avg).
/// Without GROUP BY `keys` is empty and the result is exactly one row. DISTINCT is
/// every output column as a key and no aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grouping {
    pub keys: Vec<usize>,
    pub aggregates: Vec<Aggregate>,
}

/// An aggregate result column and how its per-shard values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    pub column: usize,
    pub kind: AggregateKind,
}

/// How per-shard values of one aggregate combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    /// count(*), count(x), and count(DISTINCT key) when x is the shard key (distinct
    /// values never span shards): summed; the result is a bigint.
    Count,
    /// sum(x): summed, NULL when every shard's sum is NULL.
    Sum,
    Min,
    Max,
    /// avg(x): this column holds each shard's sum(x) and `count_column` its count(x);
    /// the result is sum / count with PostgreSQL's numeric (or float8) rules, NULL when
    /// the count is 0.
    Avg { count_column: usize },
    /// bool_and / every
    BoolAnd,
    /// bool_or
    BoolOr,
}

/// A HAVING condition over merged result columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// `column op value`; `value` is the constant as PostgreSQL would read it for the
    /// column's type (its text), or `None` for NULL (which makes the comparison NULL).
    Compare {
        column: usize,
        op: CompareOp,
        value: Option<String>,
    },
    /// `column IS [NOT] NULL`
    IsNull { column: usize, negated: bool },
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
}

/// A comparison operator of a [`Predicate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// The plan for one statement of a sharded database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub target: ShardTarget,
    pub statements: ShardStatements,
    pub merge: ResultMerge,
}
