//! Savepoints in a transaction that spans shards: each runs on every shard the
//! transaction reached, and on each it reaches later (see `ensure_link`), so a rollback
//! to one undoes what came after it on all of them.

use pgshard_router::SavepointCommand;

use super::execute::Outcome;
use super::replies::Lost;
use super::transaction::{ImplicitBlock, Savepoint};
use super::ShardedSession;

impl ShardedSession {
    pub(super) async fn savepoint(&mut self, command: SavepointCommand, sql: &str) -> Outcome {
        if !self.txn.is_open() || self.block == ImplicitBlock::Open {
            let message = format!(
                "{} can only be used in transaction blocks",
                command.statement()
            );
            return self.statement_error("25P01", &message).await;
        }
        let rollback = matches!(command, SavepointCommand::RollbackTo(_));
        if self.txn.failed() && !rollback {
            return self
                .statement_error(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                )
                .await;
        }
        let name = command.name().to_string();
        let found = self.txn.savepoints().iter().rposition(|s| s.name == name);
        if found.is_none() && !matches!(command, SavepointCommand::Define(_)) {
            let message = format!("savepoint \"{name}\" does not exist");
            return self.statement_error("3B001", &message).await;
        }
        for shard in 0..self.links.len() {
            let Some(link) = self.links[shard].as_mut() else {
                continue;
            };
            if !link.in_transaction {
                continue;
            }
            match link.server.run_quietly(sql).await {
                Ok(None) => {}
                Ok(Some(error)) => {
                    self.txn.fail();
                    return match self.core.client.write_frame(&error).await {
                        Ok(()) => Outcome::Failed,
                        Err(_) => Outcome::Stop,
                    };
                }
                Err(e) => {
                    let reason = format!("running {}: {e}", command.statement());
                    return self.lost(Lost { shard, reason }).await;
                }
            }
        }
        let staged = self.staged.len();
        if let Some(savepoints) = self.txn.savepoints_mut() {
            match (&command, found) {
                (SavepointCommand::Define(_), _) => savepoints.push(Savepoint {
                    name,
                    sql: sql.to_string(),
                    staged,
                }),
                (SavepointCommand::Release(_), Some(at)) => savepoints.truncate(at),
                (SavepointCommand::RollbackTo(_), Some(at)) => {
                    let before = savepoints[at].staged;
                    savepoints.truncate(at + 1);
                    self.staged.truncate(before);
                }
                _ => {}
            }
        }
        if rollback {
            self.txn.recover();
        }
        self.complete(command.tag()).await
    }
}
