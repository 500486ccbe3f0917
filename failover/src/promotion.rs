//! The actions of a failover on the nodes: promote the candidate, point the other
//! replicas at it, and keep synchronous replication from blocking writes forever.

use std::time::Duration;

use crate::control::{connect, ProbeCredentials};
use crate::error::ProbeError;

/// How the other replicas log in to stream from the new primary.
#[derive(Debug, Clone)]
pub struct ReplicationLogin {
    pub user: String,
    pub password: Option<String>,
}

pub(crate) fn query_error(addr: &str) -> impl Fn(tokio_postgres::Error) -> ProbeError + '_ {
    move |source| ProbeError::Query {
        addr: addr.to_string(),
        source,
    }
}

/// `pg_promote(wait => true)`: returns once the node accepts writes.
pub async fn promote(
    addr: &str,
    credentials: &ProbeCredentials,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let client = connect(addr, credentials, timeout).await?;
    let wait_seconds = i32::try_from(timeout.as_secs().max(1)).unwrap_or(60);
    let row = client
        .query_one("SELECT pg_promote(true, $1)", &[&wait_seconds])
        .await
        .map_err(query_error(addr))?;
    let promoted: bool = row.try_get(0).map_err(query_error(addr))?;
    if promoted {
        Ok(())
    } else {
        Err(ProbeError::Unexpected {
            addr: addr.to_string(),
            what: format!("pg_promote did not finish within {wait_seconds}s"),
        })
    }
}

/// Points replica `addr` at the primary its peers reach at `primary_peer_addr`: its
/// replication slot is created there first, then `primary_conninfo` is changed and the
/// configuration reloaded, which restarts its WAL receiver.
pub async fn repoint(
    addr: &str,
    primary_addr: &str,
    primary_peer_addr: &str,
    credentials: &ProbeCredentials,
    login: &ReplicationLogin,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let replica = connect(addr, credentials, timeout).await?;
    let settings = replica
        .query_one(
            "SELECT current_setting('primary_slot_name'), current_setting('cluster_name'), \
             current_setting('primary_conninfo')",
            &[],
        )
        .await
        .map_err(query_error(addr))?;
    let slot: String = settings.try_get(0).map_err(query_error(addr))?;
    let cluster_name: String = settings.try_get(1).map_err(query_error(addr))?;
    let old_conninfo: String = settings.try_get(2).map_err(query_error(addr))?;
    // The replica keeps the name it streamed with, so synchronous_standby_names still
    // names it: its own application_name (repmgr, hand-made setups), else cluster_name.
    let name = crate::sync_standbys::conninfo_value(&old_conninfo, "application_name")
        .unwrap_or(cluster_name);
    if !slot.is_empty() {
        let primary = connect(primary_addr, credentials, timeout).await?;
        primary
            .execute(
                "SELECT pg_create_physical_replication_slot($1) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                &[&slot],
            )
            .await
            .map_err(query_error(primary_addr))?;
    }
    let (host, port) = crate::control::split_addr(primary_peer_addr);
    let mut conninfo = format!(
        "host={} port={port} user={}",
        conninfo_value(host),
        conninfo_value(&login.user)
    );
    if let Some(password) = &login.password {
        conninfo.push_str(&format!(" password={}", conninfo_value(password)));
    }
    if !name.is_empty() {
        conninfo.push_str(&format!(" application_name={}", conninfo_value(&name)));
    }
    // ALTER SYSTEM cannot run in a transaction block, so not in a multi-statement query.
    replica
        .batch_execute(&format!(
            "ALTER SYSTEM SET primary_conninfo = {}",
            sql_literal(&conninfo)
        ))
        .await
        .map_err(query_error(addr))?;
    replica
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(query_error(addr))?;
    Ok(())
}

/// Turns synchronous replication off on `addr`, so commits stop waiting for a standby
/// that is not there.
pub async fn drop_synchronous(
    addr: &str,
    credentials: &ProbeCredentials,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let client = connect(addr, credentials, timeout).await?;
    client
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        .await
        .map_err(query_error(addr))?;
    client
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(query_error(addr))
}

/// A libpq connection-string value, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A SQL string literal.
fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_backslashes() {
        assert_eq!(conninfo_value("it's"), r"'it\'s'");
        assert_eq!(conninfo_value(r"a\b"), r"'a\\b'");
        assert_eq!(
            sql_literal(r"host='x' password='it\'s'"),
            r"'host=''x'' password=''it\''s'''"
        );
    }
}
