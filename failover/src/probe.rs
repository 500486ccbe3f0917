//! One node's health check over a control connection.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::error::ProbeError;
use crate::lsn::Lsn;
use crate::node_status::{NodeRole, NodeStatus};

/// Credentials of the control connections, which only read status functions.
#[derive(Debug, Clone)]
pub struct ProbeCredentials {
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

/// Role and WAL positions in one round trip, so the check is cheap enough to run often.
const CHECK_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, \
     pg_last_wal_receive_lsn()::text, \
     CASE WHEN pg_is_in_recovery() \
          THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END";

/// Keeps one control connection to a node open between checks and reconnects after a
/// failure; a check that takes longer than the timeout counts as failed.
pub struct NodeProbe {
    addr: String,
    credentials: ProbeCredentials,
    timeout: Duration,
    client: Option<Client>,
}

/// What one successful check saw.
#[derive(Debug, Clone, Copy)]
pub struct ProbeReading {
    pub role: NodeRole,
    pub lsn: Option<Lsn>,
    pub received_lsn: Option<Lsn>,
    pub replay_delay: Option<Duration>,
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
            self.client = Some(self.connect().await?);
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
        let in_recovery: bool = row.try_get(0).map_err(|e| self.unexpected(e))?;
        let lsn = self.lsn(row.try_get(1).map_err(|e| self.unexpected(e))?)?;
        let received_lsn = self.lsn(row.try_get(2).map_err(|e| self.unexpected(e))?)?;
        let delay: Option<f64> = row.try_get(3).map_err(|e| self.unexpected(e))?;
        Ok(ProbeReading {
            role: if in_recovery {
                NodeRole::Replica
            } else {
                NodeRole::Primary
            },
            lsn,
            received_lsn,
            replay_delay: delay
                .filter(|d| d.is_finite())
                .map(|d| Duration::from_secs_f64(d.max(0.0))),
            sent_at,
        })
    }

    async fn connect(&self) -> Result<Client, ProbeError> {
        let (host, port) = split_addr(&self.addr);
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&self.credentials.user)
            .dbname(&self.credentials.database)
            .application_name("pgshard monitor")
            .connect_timeout(self.timeout);
        if let Some(password) = &self.credentials.password {
            config.password(password);
        }
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|source| ProbeError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
        let addr = self.addr.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(node = %addr, "control connection ended: {e}");
            }
        });
        Ok(client)
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
            status.lsn = r.lsn.or(status.lsn);
            status.received_lsn = r.received_lsn;
            status.replay_delay = r.replay_delay;
            status.checked_at = Some(r.sent_at);
        }
        Err(_) => {
            status.reachable = false;
            status.failures = status.failures.saturating_add(1);
        }
    }
}

/// `host:port` or `[v6]:port` into its parts; the config has validated the form.
fn split_addr(addr: &str) -> (&str, u16) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "5432"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port.parse().unwrap_or(5432))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        assert_eq!(split_addr("db1:6543"), ("db1", 6543));
        assert_eq!(split_addr("[::1]:5432"), ("::1", 5432));
        assert_eq!(split_addr("10.0.0.1:5432"), ("10.0.0.1", 5432));
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
        let ok = Ok(ProbeReading {
            role: NodeRole::Replica,
            lsn: Some(Lsn(10)),
            received_lsn: Some(Lsn(12)),
            replay_delay: None,
            sent_at: Instant::now(),
        });
        record(&mut status, &ok);
        assert!(status.reachable);
        assert_eq!(status.failures, 0);
        assert_eq!(status.lsn, Some(Lsn(10)));
    }
}
