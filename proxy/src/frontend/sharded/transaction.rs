//! A client transaction that spans shards: each shard gets its own server transaction,
//! opened when the client's transaction first touches it, and COMMIT or ROLLBACK ends
//! them all.
//!
//! A transaction that wrote on several shards commits atomically with two-phase commit
//! (see `commit.rs`), unless `two_phase_commit = "off"`.

/// PostgreSQL runs the statements of one simple query string, and the Executes of one
/// extended-protocol batch up to its Sync, as one implicit transaction: an error undoes
/// what the earlier ones wrote. A sharded session does the same, opening the
/// transaction only once the block writes, so blocks of reads stay on replicas and cost
/// nothing extra.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImplicitBlock {
    /// One statement: it is its own transaction.
    #[default]
    Off,
    /// Several statements, none of them written yet in a transaction of the block's own.
    Pending,
    /// The block wrote: the open [`TxnState`] is the block's, and ends with it.
    Open,
}

/// The state of the client's transaction block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TxnState {
    /// Autocommit: every statement is its own transaction.
    #[default]
    Idle,
    /// BEGIN was run; `begin` is the client's statement, replayed on each shard the
    /// transaction reaches. `failed` after an error: only ROLLBACK (or COMMIT, which
    /// rolls back) is accepted, as in PostgreSQL.
    Open {
        begin: String,
        read_only: bool,
        failed: bool,
        /// The savepoints in effect, oldest first.
        savepoints: Vec<Savepoint>,
    },
}

/// A savepoint of the open transaction: its folded name, the client's statement (run
/// again on each shard the transaction reaches later, right after its BEGIN), and how
/// many staged settings came before it (a rollback to it drops the later ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Savepoint {
    pub name: String,
    pub sql: String,
    pub staged: usize,
}

impl TxnState {
    pub fn is_open(&self) -> bool {
        matches!(self, TxnState::Open { .. })
    }

    pub fn failed(&self) -> bool {
        matches!(self, TxnState::Open { failed: true, .. })
    }

    /// A transaction opened by `begin`, with no savepoint yet.
    pub fn open(begin: &str, read_only: bool) -> TxnState {
        TxnState::Open {
            begin: begin.to_string(),
            read_only,
            failed: false,
            savepoints: Vec::new(),
        }
    }

    /// The savepoints in effect (none outside a transaction).
    pub fn savepoints(&self) -> &[Savepoint] {
        match self {
            TxnState::Open { savepoints, .. } => savepoints,
            TxnState::Idle => &[],
        }
    }

    pub fn savepoints_mut(&mut self) -> Option<&mut Vec<Savepoint>> {
        match self {
            TxnState::Open { savepoints, .. } => Some(savepoints),
            TxnState::Idle => None,
        }
    }

    /// After ROLLBACK TO: the transaction takes statements again.
    pub fn recover(&mut self) {
        if let TxnState::Open { failed, .. } = self {
            *failed = false;
        }
    }

    pub fn fail(&mut self) {
        if let TxnState::Open { failed, .. } = self {
            *failed = true;
        }
    }

    /// What ReadyForQuery reports.
    pub fn status(&self) -> u8 {
        match self {
            TxnState::Idle => b'I',
            TxnState::Open { failed: false, .. } => b'T',
            TxnState::Open { failed: true, .. } => b'E',
        }
    }
}
