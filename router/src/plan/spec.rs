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
    /// catalog, or a statement that reads no table at all. Also transaction and
    /// session statements (BEGIN, SET, SHOW, LISTEN, …), which the data plane handles
    /// itself, and the Describe of a statement whose keys are still parameters.
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
    /// A multi-row `INSERT … RETURNING` split over shards ([`ShardStatements::PerShard`]):
    /// counts are summed as with [`ResultMerge::Counts`], but the RETURNING rows are put
    /// back in the order of the client's VALUES rows, as one server returns them.
    /// Entry `i` is the shard that got the client's row `i`; each shard returns exactly
    /// one row per row it was sent, in the order sent, so the reply's row `i` is the
    /// next unread row of shard `row_shards[i]`.
    InsertReturning { row_shards: Vec<usize> },
    /// Every shard runs it and must succeed (DDL, broadcast utility statements): the
    /// client gets the first shard's reply once.
    Same,
    /// `COPY replicated_table FROM STDIN`: every shard is sent the statement and every
    /// data row; the client gets one shard's reply once, as with [`ResultMerge::Same`].
    CopyEverywhere,
    /// `COPY sharded_table TO STDOUT`: every shard copies its rows out and the client gets
    /// one copy: one CopyOutResponse, every shard's rows in turn (the first shard's
    /// header line only, when `header`), one CopyDone and the row counts summed.
    CopyOut { header: bool },
    /// `COPY sharded_table FROM STDIN`: every targeted shard is sent the statement, then
    /// each data row goes to the shard its key names (see [`CopySplit`]); the row
    /// counts of the "COPY n" tags are summed.
    Copy(CopySplit),
}

/// How to find the shard of each data row of a `COPY … FROM STDIN` (text or CSV).
///
/// The data plane cuts the CopyData stream into rows with `copy_row_end`, reads each
/// row's key with `copy_key_field` (or both at once with
/// `ShardSchema::copy_row_shard`) and forwards the row, unchanged, to that shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySplit {
    /// The key's field index (0-based) in each row: its position in the COPY's column
    /// list.
    pub key_field: usize,
    /// How many fields each row has (the column list's length).
    pub fields: usize,
    /// The key column's type, to read the field's text.
    pub key_type: crate::sharding::KeyType,
    pub format: CopyFormat,
    /// The field separator (default tab for text, comma for CSV).
    pub delimiter: u8,
    /// The NULL marker (default `\N` for text, the empty string for CSV).
    pub null: Vec<u8>,
    /// The first row is a header that the server skips: send it to every shard, since
    /// each shard skips its own first row.
    pub header: bool,
    /// CSV: the quote character (default `"`).
    pub quote: u8,
    /// CSV: the character that escapes a quote inside quotes (default: the quote).
    pub escape: u8,
    /// CSV `FORCE_NOT_NULL` names the key: an unquoted null marker is a string.
    pub force_not_null: bool,
    /// CSV `FORCE_NULL` names the key: a quoted null marker is NULL too.
    pub force_null: bool,
}

/// The format of a COPY's data rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format: backslash escapes.
    Text,
    /// CSV with quotes.
    Csv,
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
    /// The last `hidden_columns` columns of each shard's rows were appended by the
    /// rewrite (for ORDER BY, GROUP BY, HAVING or avg) and are dropped before the client
    /// sees the row; the client's column count is the shards' count minus this. (With
    /// `SELECT *` the visible count is only known from the RowDescription.)
    pub hidden_columns: usize,
    /// How many columns the client gets, when the select list says (no `*`): lets the
    /// data plane ask the shards for each column in its own format.
    pub visible_columns: Option<usize>,
}

impl RowMerge {
    /// Whether the merge reads the values of `column` (to order, group, aggregate or
    /// filter rows); the other columns pass through as the shards sent them.
    pub fn reads(&self, column: ColumnRef) -> bool {
        if self.order_by.iter().any(|k| k.column == column) {
            return true;
        }
        if let Some(group) = &self.group {
            if group.keys.contains(&column)
                || group.computed.iter().any(|c| c.column == column)
                || group.aggregates.iter().any(|a| {
                    a.column == column
                        || matches!(a.kind, AggregateKind::Avg { count_column } if count_column == column)
                })
            {
                return true;
            }
        }
        self.having.as_ref().is_some_and(|p| p.reads(column))
    }
}

/// A column of the shards' rows, by position among the visible or the hidden columns.
///
/// A row is the client's columns (as many as the select list yields, which with `*`
/// only the shards' RowDescription tells) followed by the rewrite's hidden ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnRef {
    /// The client's column `i` (0-based): row index `i`.
    Visible(usize),
    /// Hidden column `i` (0-based): row index `row.len() - hidden_columns + i`.
    Hidden(usize),
}

/// One ORDER BY item, by result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub column: ColumnRef,
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
    pub keys: Vec<ColumnRef>,
    pub aggregates: Vec<Aggregate>,
    /// Columns the merge computes from the combined aggregates and group keys
    /// (`count(*)::int`, `COALESCE(sum(x), 0)`, `sum(a) / sum(b)`, `round(avg(x), 2)`),
    /// once the aggregates are finished and before HAVING and ORDER BY see the rows.
    pub computed: Vec<ComputedColumn>,
    /// The order the shards send their groups in (ORDER BY of the shards' statement),
    /// over every key: equal keys from several shards meet as the merge reads the
    /// shards' sorted streams, so it holds one group at a time. It starts with the
    /// client's ORDER BY when that sorts by keys only, so the merged groups come out in
    /// the client's order. Empty without keys.
    pub sorted_by: Vec<SortKey>,
}

/// A column whose value the merge computes from other columns of the merged group, as
/// PostgreSQL evaluates the expression, giving the column the expression's type.
///
/// `column` holds one of the expression's aggregates until then (the shards compute it
/// in that place, under the expression's name); every [`ValueExpr::Column`] reads the
/// combined values of the group as they were before any column was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedColumn {
    pub column: ColumnRef,
    pub expr: ValueExpr,
}

/// An expression over a merged group's combined aggregates and group keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueExpr {
    /// A combined aggregate or a group key (its type is the shards' RowDescription's,
    /// an avg's the average's).
    Column(ColumnRef),
    /// A number literal.
    Constant(Constant),
    /// `value::target` or `CAST(value AS target)`, with PostgreSQL's conversion rules.
    Cast(Box<ValueExpr>, CastTarget),
    /// `COALESCE(value, constant)`: both converted to the type PostgreSQL resolves for
    /// the pair, the constant taking the place of a NULL value.
    Coalesce(Box<ValueExpr>, Constant),
    /// Unary minus.
    Negate(Box<ValueExpr>),
    /// `left op right`, with PostgreSQL's operator for the operands' types.
    Arithmetic(ArithmeticOp, Box<ValueExpr>, Box<ValueExpr>),
    /// One of PostgreSQL's numeric functions.
    Function(NumericFunction, Vec<ValueExpr>),
}

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithmeticOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

/// The built-in numeric functions the merge applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericFunction {
    /// `round(x)`, `round(x, scale)`
    Round,
    /// `trunc(x)`, `trunc(x, scale)`
    Trunc,
    Abs,
    /// `ceil(x)` / `ceiling(x)`
    Ceil,
    Floor,
}

/// A built-in type the merge can cast a combined value to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastTarget {
    /// smallint / int2
    Int2,
    /// integer / int / int4
    Int4,
    /// bigint / int8
    Int8,
    /// numeric (or decimal), with `numeric(precision, scale)`'s modifier if given.
    Numeric {
        typmod: Option<NumericTypmod>,
    },
    /// real / float4
    Float4,
    /// double precision / float8
    Float8,
    Text,
    /// varchar / character varying, `varchar(length)` cutting longer values.
    Varchar {
        length: Option<u32>,
    },
}

/// The precision and scale of `numeric(precision, scale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericTypmod {
    /// 1 to 1000.
    pub precision: i32,
    /// -1000 to 1000; 0 for `numeric(precision)`.
    pub scale: i32,
}

/// A literal in a computed expression, typed as PostgreSQL types a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constant {
    /// An integer literal with its sign (`0`, `-5`): integer, or bigint or numeric when
    /// too large.
    Integer(String),
    /// A literal with a decimal point or an exponent (`0.00`, `1e3`): numeric.
    Decimal(String),
    /// A quoted string: of unknown type, so it takes the other argument's.
    String(String),
    Bool(bool),
    Null,
}

/// An aggregate result column and how its per-shard values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    pub column: ColumnRef,
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
    Avg {
        count_column: ColumnRef,
    },
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
        column: ColumnRef,
        op: CompareOp,
        value: Option<String>,
    },
    /// `column IS [NOT] NULL`
    IsNull {
        column: ColumnRef,
        negated: bool,
    },
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
}

impl Predicate {
    /// Whether the condition reads `column`.
    pub fn reads(&self, column: ColumnRef) -> bool {
        match self {
            Predicate::Compare { column: c, .. } | Predicate::IsNull { column: c, .. } => {
                *c == column
            }
            Predicate::And(a, b) | Predicate::Or(a, b) => a.reads(column) || b.reads(column),
            Predicate::Not(p) => p.reads(column),
        }
    }
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
