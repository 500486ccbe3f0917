//! COMMIT of a sharded transaction: participants that wrote nothing just commit; one
//! writing participant commits as on a single server; several commit atomically with
//! two-phase commit when `two_phase_commit = "auto"` (the protocol, where its decision
//! lives and how recovery finishes it are in [`crate::two_phase`]), else one after
//! another, and a failure part-way names which shards committed.

use pgshard_config::TwoPhaseCommit;

use super::replies::Lost;
use super::ShardedSession;
use crate::net::messages::{error_fields, error_response};
use crate::net::{Frame, Severity, WireError};
use crate::two_phase::faults::{CommitStep, Proceed};
use crate::two_phase::{Gid, DECISIONS};

/// `[0, 2]` as "shards 0 and 2" for messages.
fn shard_list(shards: &[usize]) -> String {
    let names: Vec<String> = shards.iter().map(usize::to_string).collect();
    match names.as_slice() {
        [] => "no shard".to_string(),
        [one] => format!("shard {one}"),
        [init @ .., last] => format!("shards {} and {last}", init.join(", ")),
    }
}

/// How a COMMIT failed on one shard, for a message that says what became of the rest.
fn failure_text(shard: usize, result: &Result<Option<Frame>, WireError>) -> (String, String) {
    match result {
        Ok(Some(error)) => {
            let (code, message) = error_fields(error);
            (code, format!("shard {shard}: {message}"))
        }
        Ok(None) => ("XX000".to_string(), format!("shard {shard}")),
        Err(e) => (
            "08006".to_string(),
            format!("lost shard {shard} while ending the transaction: {e}"),
        ),
    }
}

impl ShardedSession {
    /// ROLLBACK on each of `shards` the transaction reached.
    pub(super) async fn rollback_shards(&mut self, shards: &[usize]) {
        for &shard in shards {
            if let Some(link) = self.links[shard].as_mut() {
                if link.in_transaction {
                    // A failed connection is dropped, which rolls back too.
                    let _ = link.server.run_quietly("ROLLBACK").await;
                    link.in_transaction = false;
                    link.wrote = false;
                }
            }
        }
    }

    /// COMMIT of the transaction on `shards`: the error for the client if it did not
    /// commit (or not everywhere); `Err` only when an injected fault stopped the proxy.
    pub(super) async fn commit_shards(&mut self, shards: &[usize]) -> Result<Option<Frame>, Lost> {
        let participants: Vec<usize> = shards
            .iter()
            .copied()
            .filter(|&s| self.links[s].as_ref().is_some_and(|l| l.in_transaction))
            .collect();
        if participants.len() < 2 || self.core.db.two_phase.mode == TwoPhaseCommit::Off {
            return Ok(self.commit_one_phase(&participants).await);
        }
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for &shard in &participants {
            match self.wrote_on(shard).await {
                Ok(true) => writers.push(shard),
                Ok(false) => readers.push(shard),
                Err(e) => {
                    self.rollback_shards(&participants).await;
                    return Ok(Some(error_response(
                        Severity::Error,
                        "08006",
                        &format!(
                            "pgshard: lost shard {shard} while committing: {e}; the transaction \
                             is rolled back on every shard"
                        ),
                    )));
                }
            }
        }
        // Shards that wrote nothing have nothing to make atomic: they end first, and a
        // failure there changes no data.
        for &shard in &readers {
            if let Some(link) = self.links[shard].as_mut() {
                let _ = link.server.run_quietly("COMMIT").await;
                link.in_transaction = false;
            }
        }
        if writers.len() < 2 {
            return Ok(self.commit_one_phase(&writers).await);
        }
        self.commit_two_phase(&writers).await
    }

    /// Whether the transaction changed anything on `shard`: a statement classified as a
    /// write ran there, or the server gave it a transaction id (a function called from a
    /// SELECT may write).
    async fn wrote_on(&mut self, shard: usize) -> Result<bool, WireError> {
        let Some(link) = self.links[shard].as_mut() else {
            return Ok(false);
        };
        if link.wrote {
            return Ok(true);
        }
        if !link.on_primary {
            return Ok(false);
        }
        let xid = link
            .server
            .query_value("SELECT txid_current_if_assigned()")
            .await?;
        Ok(xid.is_some())
    }

    /// Each shard commits in turn; after a failure the rest roll back. The error names
    /// the shards that committed and those that did not.
    async fn commit_one_phase(&mut self, shards: &[usize]) -> Option<Frame> {
        let mut committed = Vec::new();
        let mut rolled_back = Vec::new();
        let mut failure = None;
        for &shard in shards {
            let Some(link) = self.links[shard].as_mut() else {
                continue;
            };
            if !link.in_transaction {
                continue;
            }
            let sql = if failure.is_none() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            let result = link.server.run_quietly(sql).await;
            link.in_transaction = false;
            link.wrote = false;
            if failure.is_some() {
                rolled_back.push(shard);
                continue;
            }
            match result {
                Ok(None) => committed.push(shard),
                failed => failure = Some((shard, failed)),
            }
        }
        let (shard, result) = failure?;
        if committed.is_empty() {
            if let Ok(Some(error)) = result {
                // Nothing committed: the server's own error says it all.
                return Some(error);
            }
        }
        let (mut code, reason) = failure_text(shard, &result);
        if result.is_err() {
            // The connection went during COMMIT: its outcome is unknown.
            code = "08007".to_string();
        } else if !committed.is_empty() && code.starts_with("40") {
            // Part committed: not an error a client retries the transaction on (a
            // serialization failure's 40001 would repeat the writes that stay).
            code = "XX000".to_string();
        }
        let outcome = match result {
            Ok(_) => format!("shard {shard} did not commit"),
            Err(_) => format!("whether shard {shard} committed is unknown"),
        };
        let mut message = format!("pgshard: COMMIT failed on {reason}; {outcome}");
        if !committed.is_empty() {
            message.push_str(&format!(
                ", {} committed before it and stay committed",
                shard_list(&committed)
            ));
        }
        if !rolled_back.is_empty() {
            message.push_str(&format!(", {} rolled back", shard_list(&rolled_back)));
        }
        if committed.len() + rolled_back.len() > 0 {
            message.push_str(" (two_phase_commit = \"off\": commits are not atomic across shards)");
        }
        Some(error_response(Severity::Error, &code, &message))
    }

    /// Runs `sql` on `shard`'s server.
    async fn run_on(&mut self, shard: usize, sql: &str) -> Result<Option<Frame>, WireError> {
        match self.links[shard].as_mut() {
            Some(link) => link.server.run_quietly(sql).await,
            None => Err(WireError::Io("no server connection".to_string())),
        }
    }

    /// An injected fault at `step`: the proxy "dies" there, every server connection
    /// closed mid-protocol and the client's too.
    async fn fault_point(&mut self, step: CommitStep) -> Result<(), Lost> {
        let faults = self.core.db.two_phase.faults.clone();
        match faults.at(step).await {
            Proceed::Continue => Ok(()),
            Proceed::Crash => {
                for slot in &mut self.links {
                    if let Some(link) = slot.as_mut() {
                        link.server.broken = true;
                    }
                    *slot = None;
                }
                Err(Lost {
                    shard: usize::MAX,
                    reason: format!("injected fault at {step:?}"),
                })
            }
        }
    }

    /// Two-phase commit of `writers` (at least two), the first the coordinator; see
    /// [`crate::two_phase`].
    async fn commit_two_phase(&mut self, writers: &[usize]) -> Result<Option<Frame>, Lost> {
        let Some((&coordinator, others)) = writers.split_first() else {
            return Ok(None);
        };
        let gid = Gid::new(coordinator);
        let two_phase = self.core.db.two_phase.clone();
        if !two_phase.table_ready(coordinator) {
            let addr = self.links[coordinator]
                .as_ref()
                .map(|l| l.server.addr.clone())
                .unwrap_or_default();
            if let Err(e) = two_phase.ensure_table(coordinator, &addr).await {
                // The insert below fails and says so.
                tracing::warn!(shard = coordinator, "could not create {DECISIONS}: {e}");
            }
        }

        // The decision row, in the coordinator's transaction: it commits with it.
        let insert = format!("INSERT INTO {DECISIONS} (gid) VALUES ({})", gid.literal());
        let recorded = self.run_on(coordinator, &insert).await;
        if !matches!(recorded, Ok(None)) {
            self.rollback_shards(writers).await;
            let (code, reason) = failure_text(coordinator, &recorded);
            let message = format!(
                "pgshard: could not record the commit decision in {DECISIONS} on {reason}; the \
                 transaction is rolled back on every shard (two-phase commit needs that \
                 table, which pgshard creates; or set two_phase_commit = \"off\")"
            );
            return Ok(Some(error_response(Severity::Error, &code, &message)));
        }
        self.fault_point(CommitStep::BeforePrepare).await?;

        let prepare = format!("PREPARE TRANSACTION {}", gid.literal());
        let mut prepared = Vec::new();
        let mut failure = None;
        for &shard in others {
            let result = self.run_on(shard, &prepare).await;
            if let Some(link) = self.links[shard].as_mut() {
                // Prepared or failed, the session's transaction there is over.
                link.in_transaction = false;
                link.wrote = false;
            }
            match result {
                Ok(None) => prepared.push(shard),
                failed => {
                    failure = Some(prepare_failure(shard, &failed));
                    break;
                }
            }
        }
        if let Some(failure) = failure {
            self.abandon(&prepared, &gid).await;
            self.rollback_shards(writers).await;
            return Ok(Some(failure));
        }
        self.fault_point(CommitStep::AfterPrepare).await?;

        // The commit point.
        let decided = self.run_on(coordinator, "COMMIT").await;
        if let Some(link) = self.links[coordinator].as_mut() {
            link.in_transaction = false;
            link.wrote = false;
        }
        match decided {
            Ok(None) => {}
            Ok(Some(error)) => {
                // The coordinator rolled back (a deferred constraint, a serialization
                // failure): so does everyone.
                self.abandon(&prepared, &gid).await;
                return Ok(Some(error));
            }
            Err(e) => {
                let message = format!(
                    "pgshard: lost shard {coordinator} during COMMIT ({e}): whether the \
                     transaction committed is unknown; it is committed on every shard or on \
                     none, and pgshard's recovery finishes the shards prepared for it \
                     (transaction {gid})"
                );
                tracing::warn!(%gid, "{message}");
                return Ok(Some(error_response(Severity::Error, "08007", &message)));
            }
        }
        self.fault_point(CommitStep::AfterDecision).await?;

        let commit = format!("COMMIT PREPARED {}", gid.literal());
        for (i, &shard) in prepared.iter().enumerate() {
            match self.run_on(shard, &commit).await {
                Ok(None) => {}
                // Decided all the same: finished already (by a recovery that found the
                // decision) or left for recovery to finish.
                Ok(Some(error)) => {
                    let (code, message) = error_fields(&error);
                    tracing::warn!(shard, %gid, code, "COMMIT PREPARED failed, left to recovery: {message}");
                }
                Err(e) => {
                    tracing::warn!(shard, %gid, "COMMIT PREPARED failed, left to recovery: {e}");
                }
            }
            if i == 0 {
                self.fault_point(CommitStep::AfterFirstCommitPrepared)
                    .await?;
            }
        }
        Ok(None)
    }

    /// ROLLBACK PREPARED on `prepared`, after the commit was given up; one that fails is
    /// rolled back by recovery (its GID has no commit decision).
    async fn abandon(&mut self, prepared: &[usize], gid: &Gid) {
        let sql = format!("ROLLBACK PREPARED {}", gid.literal());
        for &shard in prepared {
            if !matches!(self.run_on(shard, &sql).await, Ok(None)) {
                tracing::warn!(shard, %gid, "ROLLBACK PREPARED failed, left to recovery");
            }
        }
    }
}

/// The client's error when `shard` could not prepare the transaction.
fn prepare_failure(shard: usize, result: &Result<Option<Frame>, WireError>) -> Frame {
    let (code, reason) = failure_text(shard, result);
    let message = if code == "55000" {
        // PostgreSQL: "prepared transactions are disabled".
        format!(
            "pgshard: shard {shard} cannot prepare transactions (max_prepared_transactions is 0 \
             on its primary), and a transaction that wrote on several shards commits with \
             two-phase commit (two_phase_commit = \"auto\"); set max_prepared_transactions \
             above 0 on every shard's servers, or two_phase_commit = \"off\". The transaction \
             is rolled back on every shard"
        )
    } else {
        format!(
            "pgshard: could not prepare the transaction for a two-phase commit on {reason}; the \
             transaction is rolled back on every shard"
        )
    };
    error_response(Severity::Error, &code, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_listed_for_people() {
        assert_eq!(shard_list(&[]), "no shard");
        assert_eq!(shard_list(&[2]), "shard 2");
        assert_eq!(shard_list(&[0, 1]), "shards 0 and 1");
        assert_eq!(shard_list(&[0, 1, 3]), "shards 0, 1 and 3");
    }

    #[test]
    fn a_lost_shard_is_08006_and_a_refusal_keeps_its_code() {
        let lost = failure_text(1, &Err(WireError::Io("reset".into())));
        assert_eq!(lost.0, "08006");
        assert!(lost.1.contains("lost shard 1"), "{lost:?}");
        let refused = error_response(Severity::Error, "40001", "could not serialize");
        let (code, reason) = failure_text(2, &Ok(Some(refused)));
        assert_eq!(code, "40001");
        assert_eq!(reason, "shard 2: could not serialize");
    }

    #[test]
    fn disabled_prepared_transactions_name_the_setting() {
        let refused = error_response(
            Severity::Error,
            "55000",
            "prepared transactions are disabled",
        );
        let frame = prepare_failure(1, &Ok(Some(refused)));
        let (code, message) = error_fields(&frame);
        assert_eq!(code, "55000");
        assert!(message.contains("max_prepared_transactions"), "{message}");
        assert!(message.contains("two_phase_commit = \"off\""), "{message}");
    }
}
