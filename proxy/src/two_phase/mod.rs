//! Atomic commit of a transaction that wrote on several shards, with PostgreSQL's
//! two-phase commit, and no state in the proxy.
//!
//! The protocol (run by [`crate::frontend::sharded`] at COMMIT):
//!
//! 1. Participants that wrote nothing get a plain COMMIT; with one writing participant
//!    left, it gets a plain COMMIT too (one-phase, as before).
//! 2. Otherwise the lowest-numbered writing shard is the *coordinator*, and the commit
//!    gets a [`Gid`] naming it. Inside the client's own transaction on the coordinator,
//!    the decision row `(gid)` is inserted into [`DECISIONS`] — not committed yet.
//! 3. Every other writing participant runs `PREPARE TRANSACTION 'gid'`. A failure there
//!    rolls back everything (prepared ones with `ROLLBACK PREPARED`).
//! 4. The coordinator runs `COMMIT`. **That commit is the commit point**: the decision
//!    row becomes visible exactly when the coordinator's own writes do. If it fails, the
//!    prepared participants are rolled back; if its outcome is unknown (connection lost),
//!    recovery settles them from the row.
//! 5. Every prepared participant runs `COMMIT PREPARED 'gid'`; one that fails is left to
//!    recovery, which will find the decision row.
//!
//! Recovery ([`recovery`]) runs in every proxy, for each sharded database, at start,
//! every `two_phase_recovery_interval` and when a shard's primary changes. On each
//! shard's primary it lists `pg_prepared_xacts` with pgshard's GIDs; for each it reads
//! the decision on the coordinator named in the GID: a commit row → `COMMIT PREPARED`;
//! no row and prepared longer than `two_phase_commit_timeout` → it inserts an *abort*
//! row (`commit = false`), which waits for a coordinator transaction still holding the
//! GID's row (the primary key), and fails if that one committed — so recovery and a
//! live (or hung) commit can never decide differently, whatever the timing; then it
//! follows whichever row is there. Decision rows whose GID is prepared nowhere are
//! deleted.
//!
//! The decision table is created (with its schema) by recovery on every shard, and by
//! the first two-phase commit on a coordinator where it is not known to exist yet.

pub mod faults;
pub mod gid;
pub mod recovery;
pub mod resolve;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgshard_config::{DatabaseConfig, TwoPhaseCommit};
use pgshard_failover::ProbeCredentials;

pub use faults::CommitFaults;
pub use gid::Gid;

/// Where coordinators record their decisions; in a schema of the proxy's own, which
/// `pgshard dump` leaves out.
pub const DECISIONS: &str = "pgshard.commit_decisions";

/// Creates the decision table where it is missing. Every role may insert and read
/// rows: the coordinator writes its row inside the client's transaction, as the
/// client's server user.
const CREATE_DECISIONS: &str = "\
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.commit_decisions (
    gid text PRIMARY KEY,
    commit boolean NOT NULL DEFAULT true,
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT USAGE ON SCHEMA pgshard TO PUBLIC;
GRANT SELECT, INSERT ON pgshard.commit_decisions TO PUBLIC;";

/// How long a control connection of the two-phase machinery may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One sharded database's two-phase commit settings and what the proxy learnt about
/// its shards: where the decision table exists, where prepared transactions are off.
#[derive(Debug)]
pub struct TwoPhase {
    pub mode: TwoPhaseCommit,
    /// Prepared transactions with no decision older than this are rolled back.
    pub timeout: Duration,
    /// How often recovery looks at every shard.
    pub interval: Duration,
    /// Per shard: the decision table is known to exist there.
    tables: Vec<AtomicBool>,
    /// The control login, per shard (each in the shard's own database).
    credentials: Vec<ProbeCredentials>,
    /// Test-only fault points of the commit path.
    pub faults: Arc<CommitFaults>,
}

impl TwoPhase {
    pub fn new(config: &DatabaseConfig, credentials: &ProbeCredentials) -> TwoPhase {
        let shards = config.shards.len();
        TwoPhase {
            mode: config.two_phase_commit,
            timeout: config.two_phase_commit_timeout,
            interval: config.two_phase_recovery_interval,
            tables: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            credentials: (0..shards)
                .map(|shard| ProbeCredentials {
                    database: config.shard_database(shard).to_string(),
                    ..credentials.clone()
                })
                .collect(),
            faults: Arc::default(),
        }
    }

    /// The control login for shard `shard`.
    pub fn credentials(&self, shard: usize) -> Option<&ProbeCredentials> {
        self.credentials.get(shard)
    }

    /// Whether the decision table is known to exist on `shard`.
    pub fn table_ready(&self, shard: usize) -> bool {
        self.tables
            .get(shard)
            .is_some_and(|t| t.load(Ordering::Relaxed))
    }

    fn mark_table(&self, shard: usize) {
        if let Some(t) = self.tables.get(shard) {
            t.store(true, Ordering::Relaxed);
        }
    }

    /// Creates the decision table on `shard`, whose primary is at `addr`, through a
    /// control connection of its own (the session's connection is inside the client's
    /// transaction).
    pub async fn ensure_table(&self, shard: usize, addr: &str) -> Result<(), String> {
        let credentials = self
            .credentials(shard)
            .ok_or_else(|| format!("shard {shard} is not configured"))?;
        let client = pgshard_failover::control::connect(addr, credentials, CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        create_decision_table(&client)
            .await
            .map_err(|e| error_text(&e))?;
        self.mark_table(shard);
        Ok(())
    }
}

/// Runs [`CREATE_DECISIONS`]; two proxies creating the table at once make one of them
/// fail on a catalog key, and it tries again.
async fn create_decision_table(
    client: &tokio_postgres::Client,
) -> Result<(), tokio_postgres::Error> {
    match client.batch_execute(CREATE_DECISIONS).await {
        Err(e)
            if e.code()
                .is_some_and(|c| c.code() == "23505" || c.code() == "42P07") =>
        {
            client.batch_execute(CREATE_DECISIONS).await
        }
        other => other,
    }
}

/// A server error with its message, not just "db error".
fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
