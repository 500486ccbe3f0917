//! One node's health check over a control connection.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::control::{connect, ProbeCredentials};
use crate::error::ProbeError;
use crate::lsn::Lsn;
use crate::node_status::{NodeRole, NodeStatus};
use crate::sync_standbys::{effective_application_name, Standby, SyncRule};

/// Role, timeline, WAL positions, replication state and identity in one round trip, so
/// the check is cheap enough to run every second. A replica's identity is the
/// `application_name` it streams with, derived from `primary_conninfo` as its WAL receiver
/// derives it (read from pg_settings, which shows it to superusers and pg_read_all_settings
/// only, and keeps it while the receiver is disconnected; else `cluster_name`).
/// A primary reports every standby row and whether commits wait for it, with the
/// `synchronous_standby_names` that says how many must acknowledge.
///
/// The timeline of a primary comes from its current WAL file name, which changes the
/// moment it is promoted.
const CHECK_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, \
     pg_last_wal_receive_lsn()::text, \
     CASE WHEN pg_is_in_recovery() \
          THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END, \
     CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)::int8 \
          ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END, \
     coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false), \
     host(inet_server_addr()), inet_server_port(), current_setting('cluster_name'), \
     coalesce((SELECT array_agg(application_name::text ORDER BY pid) FROM pg_stat_replication), \
              '{}'::text[]), \
     coalesce((SELECT array_agg(sync_state IN ('sync', 'quorum') ORDER BY pid) \
               FROM pg_stat_replication), '{}'::bool[]), \
     (SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'), \
     current_setting('synchronous_standby_names')";

/// Keeps one control connection to a node open between checks and reconnects after a
/// failure; a check that takes longer than the timeout counts as failed.
pub struct NodeProbe {
    addr: String,
    credentials: ProbeCredentials,
    timeout: Duration,
    client: Option<Client>,
}

/// What one successful check saw.
#[derive(Debug, Clone)]
pub struct ProbeReading {
    pub role: NodeRole,
    pub timeline: Option<u32>,
    pub lsn: Option<Lsn>,
    pub received_lsn: Option<Lsn>,
    pub replay_delay: Option<Duration>,
    pub streaming: bool,
    pub peer_addr: Option<String>,
    /// The `application_name` it streams with, lower-cased (see [`effective_application_name`]).
    pub name: Option<String>,
    /// Primary: its `pg_stat_replication` rows.
    pub standbys: Vec<Standby>,
    /// Primary: its `synchronous_standby_names`, when set and understood.
    pub sync_rule: Option<SyncRule>,
    /// Primary: `synchronous_standby_names` is set.
    pub synchronous: bool,
    /// When the check was sent: everything committed before it is at or below `lsn`.
    pub sent_at: Instant,
}

impl NodeProbe {
    pub fn new(addr: &str, credentials: ProbeCredentials, timeout: Duration) -> NodeProbe {
        NodeProbe {
            addr: addr.to_string(),
            credentials,
            timeout,
            client: None,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs one check; on failure the connection is dropped so the next check reconnects.
    pub async fn check(&mut self) -> Result<ProbeReading, ProbeError> {
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, self.check_inner()).await;
        let result = result.unwrap_or_else(|_| {
            Err(ProbeError::TimedOut {
                addr: self.addr.clone(),
                timeout_ms: timeout.as_millis(),
            })
        });
        if result.is_err() {
            self.client = None;
        }
        result
    }

    async fn check_inner(&mut self) -> Result<ProbeReading, ProbeError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.addr, &self.credentials, self.timeout).await?);
        }
        let Some(client) = self.client.as_ref() else {
            return Err(self.unexpected("no connection"));
        };
        let sent_at = Instant::now();
        let row = client
            .query_one(CHECK_SQL, &[])
            .await
            .map_err(|source| ProbeError::Query {
                addr: self.addr.clone(),
                source,
            })?;
        let bad = |e: tokio_postgres::Error| self.unexpected(e);
        let in_recovery: bool = row.try_get(0).map_err(bad)?;
        let lsn = self.lsn(row.try_get(1).map_err(bad)?)?;
        let received_lsn = self.lsn(row.try_get(2).map_err(bad)?)?;
        let delay: Option<f64> = row.try_get(3).map_err(bad)?;
        let timeline: Option<i64> = row.try_get(4).map_err(bad)?;
        let host: Option<String> = row.try_get(6).map_err(bad)?;
        let port: Option<i32> = row.try_get(7).map_err(bad)?;
        let cluster_name: String = row.try_get(8).map_err(bad)?;
        let names: Vec<String> = row.try_get(9).map_err(bad)?;
        let acknowledging: Vec<bool> = row.try_get(10).map_err(bad)?;
        let conninfo: Option<String> = row.try_get(11).map_err(bad)?;
        let standby_names: String = row.try_get(12).map_err(bad)?;
        let standbys = names
            .into_iter()
            .zip(acknowledging)
            .map(|(name, acknowledges)| Standby {
                name: name.to_lowercase(),
                acknowledges,
            })
            .collect();
        // PostgreSQL accepted the setting; one this parser cannot read is taken as the
        // most demanding rule by the candidate choice.
        let sync_rule = SyncRule::parse(&standby_names).unwrap_or_else(|e| {
            tracing::warn!(node = %self.addr, "synchronous_standby_names: {e}");
            None
        });
        Ok(ProbeReading {
            role: if in_recovery {
                NodeRole::Replica
            } else {
                NodeRole::Primary
            },
            timeline: timeline.and_then(|t| u32::try_from(t).ok()),
            lsn,
            received_lsn,
            replay_delay: delay
                .filter(|d| d.is_finite())
                .map(|d| Duration::from_secs_f64(d.max(0.0))),
            streaming: row.try_get(5).map_err(bad)?,
            peer_addr: match (host, port) {
                (Some(h), Some(p)) if h.contains(':') => Some(format!("[{h}]:{p}")),
                (Some(h), Some(p)) => Some(format!("{h}:{p}")),
                _ => None,
            },
            name: Some(
                effective_application_name(conninfo.as_deref(), &cluster_name).to_lowercase(),
            ),
            standbys,
            sync_rule,
            synchronous: !standby_names.trim().is_empty(),
            sent_at,
        })
    }

    fn lsn(&self, text: Option<String>) -> Result<Option<Lsn>, ProbeError> {
        text.map(|t| t.parse().map_err(|e: String| self.unexpected(e)))
            .transpose()
    }

    fn unexpected(&self, what: impl ToString) -> ProbeError {
        ProbeError::Unexpected {
            addr: self.addr.clone(),
            what: what.to_string(),
        }
    }
}

/// Applies a reading (or a failure) to what is known of the node.
pub fn record(status: &mut NodeStatus, result: &Result<ProbeReading, ProbeError>) {
    match result {
        Ok(r) => {
            status.reachable = true;
            status.failures = 0;
            status.role = Some(r.role);
            status.timeline = r.timeline.or(status.timeline);
            status.lsn = r.lsn.or(status.lsn);
            status.received_lsn = r.received_lsn;
            status.replay_delay = r.replay_delay;
            status.streaming = r.streaming;
            status.peer_addr = r.peer_addr.clone().or(status.peer_addr.take());
            status.name = r.name.clone().or(status.name.take());
            status.standbys = r.standbys.clone();
            status.sync_rule = r.sync_rule.clone();
            status.synchronous = r.synchronous;
            status.checked_at = Some(r.sent_at);
        }
        Err(_) => {
            status.reachable = false;
            status.streaming = false;
            status.failures = status.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reading as a test wants it; fields not given are empty.
    pub fn reading(role: NodeRole, lsn: u64) -> ProbeReading {
        ProbeReading {
            role,
            timeline: Some(1),
            lsn: Some(Lsn(lsn)),
            received_lsn: None,
            replay_delay: None,
            streaming: role == NodeRole::Replica,
            peer_addr: None,
            name: None,
            standbys: Vec::new(),
            sync_rule: None,
            synchronous: false,
            sent_at: Instant::now(),
        }
    }

    #[test]
    fn failures_count_up_and_a_success_resets_them() {
        let mut status = NodeStatus::unknown("db:5432");
        let failed: Result<ProbeReading, ProbeError> = Err(ProbeError::TimedOut {
            addr: "db:5432".into(),
            timeout_ms: 1,
        });
        record(&mut status, &failed);
        record(&mut status, &failed);
        assert_eq!(status.failures, 2);
        assert!(!status.reachable);
        record(&mut status, &Ok(reading(NodeRole::Replica, 10)));
        assert!(status.reachable);
        assert!(status.streaming);
        assert_eq!(status.failures, 0);
        assert_eq!(status.lsn, Some(Lsn(10)));
    }
}
