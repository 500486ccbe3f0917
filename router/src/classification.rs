//! What the data plane needs to know about a query string to route it.

use crate::error::HintError;
use crate::param::RoleHint;

/// Which kind of server may run a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Any server, replicas included: the statement changes nothing and takes no
    /// locks a replica cannot take.
    Read,
    /// Only the primary. Also every statement pgshard cannot prove to be a read, since
    /// the primary runs everything correctly and a replica would fail a write.
    Write,
}

/// How a statement opens or closes a transaction block, which decides how long the
/// data plane keeps the client on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnControl {
    /// Neither opens nor closes one (SAVEPOINT and ROLLBACK TO SAVEPOINT included).
    /// PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED are here too: they
    /// are writes, and the server's ReadyForQuery status tells the outcome.
    None,
    /// `BEGIN` / `START TRANSACTION`; `read_only` when `READ ONLY` was given, which
    /// lets the whole transaction run on a replica.
    Begin { read_only: bool },
    /// `COMMIT` / `END` (with or without `AND CHAIN`).
    Commit,
    /// `ROLLBACK` / `ABORT` (not `ROLLBACK TO SAVEPOINT`).
    Rollback,
}

/// The classification of a query string, one or several statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Where it must run, with the hint applied: a `role=primary` hint makes it
    /// [`Route::Write`]; a `role=replica` hint never turns a write into a read.
    pub route: Route,
    /// For several statements: the last one that opens or closes a transaction
    /// block, since it decides the state the string leaves the session in.
    pub txn: TxnControl,
    /// The role asked for by a `/* pgshard: role=… */` comment. For several
    /// statements: `Primary` if any asked for it, else `Replica` if any did. A replica
    /// hint lets a read go to a replica even when the session would otherwise read
    /// from the primary (e.g. to read its own writes).
    pub hint: Option<RoleHint>,
    /// A hint comment with a bad value for a known key: the data plane should report
    /// it (see [`HintError::sqlstate`]) instead of running the statement. The rest of
    /// the classification ignores the bad comment.
    pub hint_error: Option<HintError>,
}

impl Classification {
    /// The classification of an empty query string: nothing to run, anywhere.
    pub(crate) fn empty() -> Self {
        Classification {
            route: Route::Read,
            txn: TxnControl::None,
            hint: None,
            hint_error: None,
        }
    }

    /// Folds the classification of the next statement of the same string into this one.
    pub(crate) fn then(mut self, next: Classification) -> Self {
        if next.route == Route::Write {
            self.route = Route::Write;
        }
        if next.txn != TxnControl::None {
            self.txn = next.txn;
        }
        self.hint = match (self.hint, next.hint) {
            (Some(RoleHint::Primary), _) | (_, Some(RoleHint::Primary)) => Some(RoleHint::Primary),
            (Some(RoleHint::Replica), _) | (_, Some(RoleHint::Replica)) => Some(RoleHint::Replica),
            (None, None) => None,
        };
        self.hint_error = self.hint_error.or(next.hint_error);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(route: Route, txn: TxnControl, hint: Option<RoleHint>) -> Classification {
        Classification {
            route,
            txn,
            hint,
            hint_error: None,
        }
    }

    #[test]
    fn a_string_reads_only_if_every_statement_does() {
        let read = statement(Route::Read, TxnControl::None, None);
        let write = statement(Route::Write, TxnControl::None, None);
        let both = Classification::empty()
            .then(read.clone())
            .then(read.clone());
        assert_eq!(both.route, Route::Read);
        assert_eq!(both.then(write).then(read).route, Route::Write);
    }

    #[test]
    fn the_last_transaction_control_wins() {
        let begin = statement(Route::Read, TxnControl::Begin { read_only: true }, None);
        let commit = statement(Route::Read, TxnControl::Commit, None);
        let select = statement(Route::Read, TxnControl::None, None);
        let folded = Classification::empty()
            .then(begin.clone())
            .then(select.clone());
        assert_eq!(folded.txn, TxnControl::Begin { read_only: true });
        assert_eq!(folded.then(commit).then(select).txn, TxnControl::Commit);
    }

    #[test]
    fn a_primary_hint_outweighs_a_replica_hint() {
        let replica = statement(Route::Read, TxnControl::None, Some(RoleHint::Replica));
        let primary = statement(Route::Write, TxnControl::None, Some(RoleHint::Primary));
        let folded = Classification::empty().then(replica.clone());
        assert_eq!(folded.hint, Some(RoleHint::Replica));
        assert_eq!(
            folded.then(primary).then(replica).hint,
            Some(RoleHint::Primary)
        );
    }
}
