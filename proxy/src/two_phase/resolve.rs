//! What recovery does with each prepared transaction it finds, and which decision rows
//! it may delete: pure decisions over what the shards reported, apart from the I/O.

use std::collections::HashSet;
use std::time::Duration;

use super::gid::Gid;

/// A transaction of pgshard's found prepared on a shard (a row of `pg_prepared_xacts`).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedXact {
    /// The shard it is prepared on.
    pub shard: usize,
    pub gid: Gid,
    /// The role that prepared it: only it (or a superuser) may finish it.
    pub owner: String,
    /// How long it has been prepared, by the server's clock.
    pub age: Duration,
}

/// The coordinator's decision row for a GID, as recovery reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The coordinator's transaction committed with the row: the commit point passed.
    Commit,
    /// Recovery recorded that the commit is abandoned; the coordinator's transaction
    /// can no longer insert its row.
    Abort,
    /// No row (none committed yet, or none ever).
    None,
}

/// What recovery does with one prepared transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CommitPrepared,
    RollbackPrepared,
    /// Old enough to be abandoned: record an abort decision on the coordinator (which
    /// waits for a coordinator transaction still holding the row), then read the
    /// decision again.
    DecideAbort,
    /// Young, with no decision: a commit may still be under way.
    Wait,
}

/// What to do with `xact`, given its coordinator's `decision`, once prepared
/// transactions without one are abandoned after `timeout`.
pub fn action(xact: &PreparedXact, decision: Decision, timeout: Duration) -> Action {
    match decision {
        Decision::Commit => Action::CommitPrepared,
        Decision::Abort => Action::RollbackPrepared,
        Decision::None if xact.age > timeout => Action::DecideAbort,
        Decision::None => Action::Wait,
    }
}

/// Of the GIDs whose decision rows a shard held, those recovery may delete: the ones not
/// prepared anywhere any more. Only sound when `decided` was read *before*
/// `still_prepared` was listed on every shard: a committed decision row means its
/// transaction was prepared everywhere before, so a participant still prepared shows
/// in the later listing.
pub fn removable(decided: &[String], still_prepared: &HashSet<String>) -> Vec<String> {
    decided
        .iter()
        .filter(|gid| !still_prepared.contains(*gid))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xact(age: u64) -> PreparedXact {
        PreparedXact {
            shard: 1,
            gid: Gid::new(0),
            owner: "app".into(),
            age: Duration::from_secs(age),
        }
    }

    #[test]
    fn a_decision_is_followed_whatever_the_age() {
        let timeout = Duration::from_secs(60);
        for age in [0, 59, 61, 3600] {
            assert_eq!(
                action(&xact(age), Decision::Commit, timeout),
                Action::CommitPrepared
            );
            assert_eq!(
                action(&xact(age), Decision::Abort, timeout),
                Action::RollbackPrepared
            );
        }
    }

    #[test]
    fn no_decision_waits_out_the_timeout_then_aborts() {
        let timeout = Duration::from_secs(60);
        assert_eq!(action(&xact(0), Decision::None, timeout), Action::Wait);
        assert_eq!(action(&xact(60), Decision::None, timeout), Action::Wait);
        assert_eq!(
            action(&xact(61), Decision::None, timeout),
            Action::DecideAbort
        );
    }

    #[test]
    fn decision_rows_stay_while_their_transaction_is_prepared() {
        let decided = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let prepared: HashSet<String> = ["b".to_string(), "x".to_string()].into();
        assert_eq!(removable(&decided, &prepared), ["a", "c"]);
        assert!(removable(&[], &prepared).is_empty());
    }
}
