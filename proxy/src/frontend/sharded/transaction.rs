//! A client transaction that spans shards: each shard gets its own server transaction,
//! opened when the client's transaction first touches it, and COMMIT or ROLLBACK ends
//! them all.
//!
//! The commit is not atomic across shards (no two-phase commit): shards commit one
//! after another, and if one fails, those not yet committed are rolled back.

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
    },
}

impl TxnState {
    pub fn is_open(&self) -> bool {
        matches!(self, TxnState::Open { .. })
    }

    pub fn failed(&self) -> bool {
        matches!(self, TxnState::Open { failed: true, .. })
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
