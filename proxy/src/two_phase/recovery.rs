//! The resolver of interrupted two-phase commits: a task per sharded database that finds
//! pgshard's prepared transactions on every shard and finishes each as its coordinator's
//! decision row says (see the [module doc](super) for the protocol). It keeps no state
//! between passes: everything it needs is on the shards, so any proxy can finish a
//! commit another one started. It also runs with `two_phase_commit = "off"`, to finish
//! what a proxy with "auto" left; it then creates no table.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pgshard_config::TwoPhaseCommit;
use pgshard_failover::{ProbeCredentials, Tasks};
use tokio_postgres::Client;

use super::gid::{Gid, PREFIX};
use super::resolve::{action, removable, Action, Decision, PreparedXact};
use super::{create_decision_table, error_text, TwoPhase, CONNECT_TIMEOUT};
use crate::routing::ShardNodes;

/// How long recovery waits for a coordinator transaction that holds a GID's decision
/// row before leaving that GID to the next pass.
const LOCK_TIMEOUT: &str = "2s";

/// The longest a recovery pass over every shard may take before it is given up.
const PASS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A server login of a `[[users]]` entry: a prepared transaction can only be finished
/// by the role that prepared it (or a superuser), which may not be the control login.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Option<String>,
}

/// One sharded database's resolver; see the module doc.
pub struct Recovery {
    pub database: String,
    pub shards: Vec<Arc<ShardNodes>>,
    pub two_phase: Arc<TwoPhase>,
    pub logins: Vec<Login>,
}

/// What recovery keeps from one pass to the next: nothing about transactions, only its
/// connections (reused while the shard's primary stays the same) and which shards it
/// already warned about.
#[derive(Default)]
pub struct Connections {
    /// Per shard: the primary's address and a connection to it.
    control: Vec<Option<(String, Client)>>,
    /// Per shard: `max_prepared_transactions = 0` was reported there.
    warned: Vec<bool>,
}

/// What one pass did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub committed: usize,
    pub rolled_back: usize,
    /// Prepared transactions left for a later pass (young, busy, or unreachable).
    pub waiting: usize,
    pub deleted: usize,
    /// Shards whose primary could not be reached.
    pub unreachable: Vec<usize>,
}

impl Recovery {
    /// Runs the resolver on `tasks` until they are stopped.
    pub fn spawn(self, tasks: &Tasks) {
        tasks.spawn_stoppable(self.run());
    }

    async fn run(self) {
        let mut changes: Vec<_> = self
            .shards
            .iter()
            .map(|s| s.primary_changes.clone())
            .collect();
        let mut connections = Connections::default();
        loop {
            // A query that never answers (a silent network, a COMMIT PREPARED waiting on
            // a synchronous standby that is down) must not stop recovery for good: the
            // pass is given up, its connections dropped, and the next one starts anew.
            let report = match tokio::time::timeout(PASS_TIMEOUT, self.pass(&mut connections)).await
            {
                Ok(report) => report,
                Err(_) => {
                    tracing::warn!(
                        database = %self.database,
                        "two-phase commit recovery: a pass took longer than {PASS_TIMEOUT:?}; \
                         it is given up and starts again"
                    );
                    connections = Connections::default();
                    PassReport::default()
                }
            };
            if report.committed + report.rolled_back + report.deleted > 0 {
                tracing::info!(database = %self.database, ?report, "two-phase commit recovery");
            } else {
                tracing::debug!(database = %self.database, ?report, "two-phase commit recovery");
            }
            // Every interval, and as soon as a shard's primary changes: a promoted
            // replica may hold transactions its old primary prepared.
            let changed = async {
                if changes.is_empty() {
                    return std::future::pending().await;
                }
                let waits = changes.iter_mut().map(|rx| Box::pin(rx.changed()));
                if futures::future::select_all(waits).await.0.is_err() {
                    // The monitor is gone (the database is going away).
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = tokio::time::sleep(self.two_phase.interval) => {}
                () = changed => {}
            }
        }
    }

    /// One look at every shard: prepared transactions finished, decision rows cleaned.
    pub async fn pass(&self, connections: &mut Connections) -> PassReport {
        let mut report = PassReport::default();
        let shards = self.shards.len();
        connections.control.resize_with(shards, || None);
        connections.warned.resize(shards, false);
        let mut control = Vec::new();
        let mut addrs = Vec::new();
        for shard in 0..shards {
            let addr = self.primary_addr(shard);
            let client = match (connections.control[shard].take(), &addr) {
                // The same primary, the connection still up: reused.
                (Some((was, client)), Some(addr)) if was == *addr && !client.is_closed() => {
                    Some(client)
                }
                (_, Some(addr)) => self.control(shard, addr, &mut connections.warned).await,
                (_, None) => None,
            };
            if client.is_none() {
                report.unreachable.push(shard);
            }
            control.push(client);
            addrs.push(addr);
        }
        let report = self.resolve_all(&control, report).await;
        for (shard, (client, addr)) in control.into_iter().zip(addrs).enumerate() {
            connections.control[shard] = client.zip(addr).map(|(c, a)| (a, c));
        }
        report
    }

    /// The pass over every shard's prepared transactions and decision rows.
    async fn resolve_all(&self, control: &[Option<Client>], mut report: PassReport) -> PassReport {
        // The decision rows are read before the prepared transactions are listed: see
        // `removable`.
        let mut decided = Vec::new();
        for client in control {
            decided.push(match client {
                Some(c) => read_gids(c, "SELECT gid FROM pgshard.commit_decisions").await,
                None => None,
            });
        }
        let mut prepared = Vec::new();
        for (shard, client) in control.iter().enumerate() {
            prepared.push(match client {
                Some(c) => list_prepared(c, shard).await,
                None => None,
            });
        }
        let mut still_prepared = HashSet::new();
        for xact in prepared.iter().flatten().flatten() {
            match self.resolve(control, xact).await {
                Ok(Some(true)) => report.committed += 1,
                Ok(Some(false)) => report.rolled_back += 1,
                Ok(None) => {
                    report.waiting += 1;
                    still_prepared.insert(xact.gid.to_string());
                }
                Err(e) => {
                    tracing::warn!(
                        database = %self.database,
                        shard = xact.shard,
                        gid = %xact.gid,
                        "could not finish a prepared transaction: {e}"
                    );
                    report.waiting += 1;
                    still_prepared.insert(xact.gid.to_string());
                }
            }
        }
        // With a shard unlisted, a row could belong to a transaction prepared there.
        if decided.iter().all(Option::is_some) && prepared.iter().all(Option::is_some) {
            for (client, gids) in control.iter().zip(&decided) {
                let (Some(client), Some(gids)) = (client, gids) else {
                    continue;
                };
                let gone = removable(gids, &still_prepared);
                if gone.is_empty() {
                    continue;
                }
                // Kept a while after the last shard finished: a shard failing over to a
                // replica that had the PREPARE but not yet the COMMIT PREPARED finds the
                // decision still there.
                let sql = "DELETE FROM pgshard.commit_decisions WHERE gid = ANY($1) \
                           AND decided_at < now() - interval '15 minutes'";
                match client.execute(sql, &[&gone]).await {
                    Ok(n) => report.deleted += n as usize,
                    Err(e) => tracing::warn!("could not delete decision rows: {}", error_text(&e)),
                }
            }
        }
        report
    }

    /// A new control connection to `shard`'s primary at `addr`, with the decision table
    /// in place and `max_prepared_transactions` checked (an error logged once when it is
    /// 0).
    async fn control(&self, shard: usize, addr: &str, warned: &mut [bool]) -> Option<Client> {
        let credentials = self.two_phase.credentials(shard)?;
        let client = self.connect(shard, credentials).await?;
        if self.two_phase.mode == TwoPhaseCommit::Off {
            // Only finishing what an earlier "auto" left: nothing to check or create.
            return Some(client);
        }
        match client
            .query_one("SHOW max_prepared_transactions", &[])
            .await
        {
            Ok(row) => {
                let value: String = row.try_get(0).unwrap_or_default();
                if value.trim() == "0" && !warned.get(shard).copied().unwrap_or(true) {
                    tracing::error!(
                        database = %self.database,
                        shard,
                        %addr,
                        "max_prepared_transactions is 0 on the shard's primary: a transaction \
                         writing on this shard and another cannot commit (two_phase_commit = \
                         \"auto\"); set max_prepared_transactions above 0 (at least \
                         max_connections) and restart the server, or set two_phase_commit = \
                         \"off\""
                    );
                    if let Some(w) = warned.get_mut(shard) {
                        *w = true;
                    }
                }
            }
            Err(e) => tracing::debug!(shard, "SHOW max_prepared_transactions: {e}"),
        }
        // Created only where missing: GRANT rewrites catalog rows even when nothing changes.
        let exists = client
            .query_one(
                "SELECT to_regclass('pgshard.commit_decisions') IS NOT NULL",
                &[],
            )
            .await
            .ok()
            .and_then(|row| row.try_get::<_, bool>(0).ok())
            .unwrap_or(false);
        if exists {
            self.two_phase.mark_table(shard);
        } else if let Err(e) = create_decision_table(&client).await {
            tracing::warn!(
                database = %self.database,
                shard,
                %addr,
                "could not create {}: {}",
                super::DECISIONS,
                error_text(&e)
            );
        } else {
            self.two_phase.mark_table(shard);
        }
        Some(client)
    }

    /// A connection to `shard`'s primary as `credentials`, with a lock timeout.
    async fn connect(&self, shard: usize, credentials: &ProbeCredentials) -> Option<Client> {
        let addr = self.primary_addr(shard)?;
        let client =
            match pgshard_failover::control::connect(&addr, credentials, CONNECT_TIMEOUT).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::debug!(shard, %addr, "two-phase recovery cannot connect: {e}");
                    return None;
                }
            };
        let settings = format!("SET lock_timeout = '{LOCK_TIMEOUT}'");
        client.batch_execute(&settings).await.ok()?;
        Some(client)
    }

    fn primary_addr(&self, shard: usize) -> Option<String> {
        let nodes = self.shards.get(shard)?;
        Some(nodes.slot(nodes.primary()?).addr.clone())
    }

    /// Finishes `xact` if its decision allows: `Some(true)` committed, `Some(false)`
    /// rolled back, `None` left for later.
    async fn resolve(
        &self,
        control: &[Option<Client>],
        xact: &PreparedXact,
    ) -> Result<Option<bool>, String> {
        let Some(Some(coordinator)) = control.get(xact.gid.coordinator()) else {
            return Ok(None);
        };
        let gid = xact.gid.to_string();
        let mut decision = read_decision(coordinator, &gid).await?;
        if action(xact, decision, self.two_phase.timeout) == Action::DecideAbort {
            let sql = "INSERT INTO pgshard.commit_decisions (gid, commit) VALUES ($1, false) \
                       ON CONFLICT (gid) DO NOTHING";
            match coordinator.execute(sql, &[&gid]).await {
                Ok(_) => {}
                // A coordinator transaction still holds the row: a commit is under way.
                Err(e) if e.code().is_some_and(|c| c.code() == "55P03") => return Ok(None),
                Err(e) => return Err(error_text(&e)),
            }
            decision = read_decision(coordinator, &gid).await?;
        }
        let commit = match action(xact, decision, self.two_phase.timeout) {
            Action::CommitPrepared => true,
            Action::RollbackPrepared => false,
            Action::Wait | Action::DecideAbort => return Ok(None),
        };
        let sql = format!(
            "{} PREPARED {}",
            if commit { "COMMIT" } else { "ROLLBACK" },
            xact.gid.literal()
        );
        let owner_login = self.owner_client(xact).await;
        let client = match &owner_login {
            Some(client) => client,
            None => match control.get(xact.shard) {
                Some(Some(client)) => client,
                _ => return Ok(None),
            },
        };
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(Some(commit)),
            // Finished meanwhile (by the committing proxy, or another's recovery).
            Err(e) if e.code().is_some_and(|c| c.code() == "42704") => Ok(None),
            Err(e) => Err(format!(
                "{sql} as the control login: {} (the transaction belongs to {:?}; give \
                 pgshard a login as that role or a superuser for failover.user)",
                error_text(&e),
                xact.owner
            )),
        }
    }

    /// A connection as the role that prepared `xact`, when a `[[users]]` entry logs in
    /// as it and it is not the control login.
    async fn owner_client(&self, xact: &PreparedXact) -> Option<Client> {
        let control = self.two_phase.credentials(xact.shard)?;
        if control.user == xact.owner {
            return None;
        }
        let login = self.logins.iter().find(|l| l.user == xact.owner)?;
        let credentials = ProbeCredentials {
            user: login.user.clone(),
            password: login.password.clone(),
            ..control.clone()
        };
        self.connect(xact.shard, &credentials).await
    }
}

/// The first column of every row of `sql`, or `None` when it fails.
async fn read_gids(client: &Client, sql: &str) -> Option<Vec<String>> {
    let rows = client.query(sql, &[]).await.ok()?;
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).ok())
        .collect()
}

/// pgshard's transactions prepared on `shard` (in its database), or `None` when they
/// cannot be listed.
async fn list_prepared(client: &Client, shard: usize) -> Option<Vec<PreparedXact>> {
    let sql = "SELECT gid, owner::text, extract(epoch FROM now() - prepared)::float8 \
               FROM pg_prepared_xacts \
               WHERE database = current_database() AND starts_with(gid, $1)";
    let rows = match client.query(sql, &[&PREFIX]).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(
                shard,
                "cannot list prepared transactions: {}",
                error_text(&e)
            );
            return None;
        }
    };
    let mut found = Vec::new();
    for row in rows {
        let (Ok(gid), Ok(owner), Ok(age)) = (
            row.try_get::<_, String>(0),
            row.try_get::<_, String>(1),
            row.try_get::<_, f64>(2),
        ) else {
            continue;
        };
        // A name that only looks like pgshard's is not touched.
        let Some(gid) = Gid::parse(&gid) else {
            continue;
        };
        found.push(PreparedXact {
            shard,
            gid,
            owner,
            age: Duration::try_from_secs_f64(age.max(0.0)).unwrap_or(Duration::MAX),
        });
    }
    Some(found)
}

/// The decision row for `gid` on its coordinator.
async fn read_decision(client: &Client, gid: &str) -> Result<Decision, String> {
    let sql = "SELECT commit FROM pgshard.commit_decisions WHERE gid = $1";
    match client.query_opt(sql, &[&gid]).await {
        Ok(None) => Ok(Decision::None),
        Ok(Some(row)) => match row.try_get::<_, bool>(0) {
            Ok(true) => Ok(Decision::Commit),
            Ok(false) => Ok(Decision::Abort),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(error_text(&e)),
    }
}
