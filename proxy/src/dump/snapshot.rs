//! A snapshot held open on one shard for the whole dump.
//!
//! Every pg_dump run against a shard (its schema, its data) imports the snapshot this
//! connection exported (`pg_dump --snapshot`), so the shard's schema and rows are one
//! consistent state even though several pg_dump runs read them. The snapshots of all
//! shards are exported one right after the other, before any pg_dump starts.

use std::time::Duration;

use pgshard_failover::NodeTls;

use super::error::DumpError;
use super::sequence_set::SequenceSet;
use super::source::DumpSource;
use crate::backend::ServerConnection;
use crate::net::messages::{self, error_fields, tag};

/// How long connecting to a shard may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one of the dump's own catalog queries may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one shard's primary in a `REPEATABLE READ` transaction whose
/// snapshot is exported.
pub struct ShardSnapshot {
    shard: usize,
    server: ServerConnection,
    /// The exported snapshot's name, for `pg_dump --snapshot`.
    pub id: String,
}

impl ShardSnapshot {
    /// Connects to shard `shard`'s configured primary and exports a snapshot there.
    pub async fn export(
        source: &DumpSource,
        shard: usize,
        tls: Option<&NodeTls>,
    ) -> Result<ShardSnapshot, DumpError> {
        let target = source
            .server_target(shard)
            .ok_or_else(|| DumpError::Config(format!("there is no shard {shard}")))?;
        let server = ServerConnection::connect(&target, CONNECT_TIMEOUT, 64 << 20, 0, tls)
            .await
            .map_err(|e| DumpError::Server {
                shard,
                addr: target.addr.clone(),
                reason: e.to_string(),
            })?;
        let mut snapshot = ShardSnapshot {
            shard,
            server,
            id: String::new(),
        };
        if snapshot
            .value("SELECT pg_catalog.pg_is_in_recovery()")
            .await?
            == Some("t".into())
        {
            return Err(snapshot.error(
                "the configured primary is a standby (after a failover?); name the shard's \
                 current primary in the configuration and dump again",
            ));
        }
        // The transaction stays idle while pg_dump runs: no timeout may end it.
        snapshot
            .value("SET idle_in_transaction_session_timeout = 0")
            .await?;
        snapshot
            .value("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        snapshot.id = snapshot
            .value("SELECT pg_catalog.pg_export_snapshot()")
            .await?
            .ok_or_else(|| snapshot.error("pg_export_snapshot() returned no snapshot"))?;
        Ok(snapshot)
    }

    /// The number of large objects the snapshot sees.
    pub async fn large_objects(&mut self) -> Result<i64, DumpError> {
        let count = self
            .value("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata")
            .await?;
        count
            .as_deref()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| self.error("could not count the large objects"))
    }

    /// Whether the sequence `set` names counts up.
    pub async fn ascending(&mut self, set: &SequenceSet) -> Result<bool, DumpError> {
        let sql = format!(
            "SELECT seqincrement > 0 FROM pg_catalog.pg_sequence \
             WHERE seqrelid = {}::pg_catalog.regclass",
            set.name_literal()
        );
        match self.value(&sql).await?.as_deref() {
            Some("t") => Ok(true),
            Some("f") => Ok(false),
            _ => Err(self.error(&format!("no sequence {}", set.name))),
        }
    }

    /// Ends the transaction (it only read) and the connection.
    pub async fn close(mut self) {
        let _ = self.value("COMMIT").await;
        let _ = self.server.write(&messages::terminate()).await;
        let _ = self.server.flush().await;
    }

    /// Runs `sql` and returns the first column of its first row (`None`: no row, or
    /// NULL); the server's error is an error.
    async fn value(&mut self, sql: &str) -> Result<Option<String>, DumpError> {
        match tokio::time::timeout(QUERY_TIMEOUT, self.value_inner(sql)).await {
            Ok(result) => result,
            Err(_) => Err(self.error(&format!("no answer to {sql} within {QUERY_TIMEOUT:?}"))),
        }
    }

    async fn value_inner(&mut self, sql: &str) -> Result<Option<String>, DumpError> {
        let lost = |e: crate::net::WireError| e.to_string();
        let mut value = None;
        let mut failure = None;
        let result: Result<(), String> = async {
            self.server
                .write(&messages::query(sql))
                .await
                .map_err(lost)?;
            self.server.flush().await.map_err(lost)?;
            loop {
                let frame = self.server.read().await.map_err(lost)?;
                match frame.tag() {
                    tag::READY_FOR_QUERY => return Ok(()),
                    tag::ERROR_RESPONSE if failure.is_none() => {
                        let (code, message) = error_fields(&frame);
                        failure = Some(format!("{sql}: {message} ({code})"));
                    }
                    tag::DATA_ROW if value.is_none() => {
                        let mut r = frame.reader();
                        if r.i16().map_err(lost)? > 0 {
                            let len = r.i32().map_err(lost)?;
                            if let Ok(len) = usize::try_from(len) {
                                let bytes = r.take(len).map_err(lost)?;
                                value = Some(String::from_utf8_lossy(bytes).into_owned());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        .await;
        match (result, failure) {
            (Err(reason), _) | (Ok(()), Some(reason)) => Err(self.error(&reason)),
            (Ok(()), None) => Ok(value),
        }
    }

    fn error(&self, reason: &str) -> DumpError {
        DumpError::Server {
            shard: self.shard,
            addr: self.server.addr.clone(),
            reason: reason.to_string(),
        }
    }
}
