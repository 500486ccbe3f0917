//! Stopping writes on a primary that is still alive, for a switchover: it is made
//! read-only and its clients are disconnected, so nothing commits on it after the WAL
//! position the new primary must reach.

use std::time::Duration;

use tokio_postgres::Client;

use crate::control::{connect, ProbeCredentials};
use crate::error::ProbeError;
use crate::lsn::Lsn;
use crate::promotion::query_error;

/// The client backends a switchover waits for or disconnects: every session but its own
/// and pgshard's health checks (which only read).
const CLIENTS: &str = "FROM pg_stat_activity WHERE backend_type = 'client backend' \
     AND pid <> pg_backend_pid() AND application_name <> 'pgshard control'";

/// A control connection to a node, for the steps of a switchover.
pub struct NodeSession {
    addr: String,
    client: Client,
}

impl NodeSession {
    pub async fn open(
        addr: &str,
        credentials: &ProbeCredentials,
        timeout: Duration,
    ) -> Result<NodeSession, ProbeError> {
        Ok(NodeSession {
            addr: addr.to_string(),
            client: connect(addr, credentials, timeout).await?,
        })
    }

    /// Client sessions in the middle of a query or a transaction.
    pub async fn busy_clients(&self) -> Result<i64, ProbeError> {
        let sql = format!("SELECT count(*) {CLIENTS} AND state <> 'idle'");
        let row = self.query_one(&sql).await?;
        row.try_get(0).map_err(query_error(&self.addr))
    }

    /// New transactions start read-only, also in sessions already open (from their next
    /// transaction on, once they have read the reloaded configuration).
    pub async fn make_read_only(&self) -> Result<(), ProbeError> {
        self.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            .await?;
        self.execute("SELECT pg_reload_conf()").await
    }

    /// Undoes [`Self::make_read_only`].
    pub async fn make_writable(&self) -> Result<(), ProbeError> {
        self.execute("ALTER SYSTEM RESET default_transaction_read_only")
            .await?;
        self.execute("SELECT pg_reload_conf()").await
    }

    /// Disconnects every client session (open transactions roll back); returns how many.
    pub async fn terminate_clients(&self) -> Result<i64, ProbeError> {
        let sql = format!("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) {CLIENTS}");
        let row = self.query_one(&sql).await?;
        row.try_get(0).map_err(query_error(&self.addr))
    }

    /// `pg_current_wal_lsn()`: everything committed so far is below it.
    pub async fn current_lsn(&self) -> Result<Lsn, ProbeError> {
        self.lsn("SELECT pg_current_wal_lsn()::text").await
    }

    /// A replica's `pg_last_wal_replay_lsn()`.
    pub async fn replayed_lsn(&self) -> Result<Lsn, ProbeError> {
        self.lsn("SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text")
            .await
    }

    /// A replica's `pg_last_wal_receive_lsn()`.
    pub async fn received_lsn(&self) -> Result<Lsn, ProbeError> {
        self.lsn("SELECT coalesce(pg_last_wal_receive_lsn(), '0/0')::text")
            .await
    }

    /// `pg_is_in_recovery()`.
    pub async fn in_recovery(&self) -> Result<bool, ProbeError> {
        let row = self.query_one("SELECT pg_is_in_recovery()").await?;
        row.try_get(0).map_err(query_error(&self.addr))
    }

    /// An error about this node's answer.
    pub fn unexpected(&self, what: String) -> ProbeError {
        ProbeError::Unexpected {
            addr: self.addr.clone(),
            what,
        }
    }

    async fn lsn(&self, sql: &str) -> Result<Lsn, ProbeError> {
        let row = self.query_one(sql).await?;
        let text: String = row.try_get(0).map_err(query_error(&self.addr))?;
        text.parse().map_err(|what| self.unexpected(what))
    }

    async fn query_one(&self, sql: &str) -> Result<tokio_postgres::Row, ProbeError> {
        self.client
            .query_one(sql, &[])
            .await
            .map_err(query_error(&self.addr))
    }

    async fn execute(&self, sql: &str) -> Result<(), ProbeError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(query_error(&self.addr))
    }
}
