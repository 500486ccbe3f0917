//! Functions that make an otherwise read-only `SELECT` a write.
//!
//! A `SELECT nextval('s')` or `SELECT pg_advisory_lock(1)` looks like a read but fails
//! on a replica or takes effect only on the server that runs it, so calls to these
//! functions anywhere in a statement send it to the primary.

use sqlparser::ast::ObjectName;
use std::collections::HashSet;

/// Built-in functions that write, take locks, assign a transaction id, need session
/// state a replica lacks, or have effects meant for the primary.
const BUILT_IN: &[&str] = &[
    // Sequences: writes, or session state set by one (currval, lastval).
    "nextval",
    "setval",
    "currval",
    "lastval",
    // Assign a transaction id, which a replica cannot.
    "txid_current",
    "pg_current_xact_id",
    // Only the primary has a current WAL position.
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    // Session and server side effects.
    "pg_notify",
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_logical_emit_message",
    "pg_replication_origin_create",
    "pg_replication_origin_drop",
    "pg_replication_origin_advance",
    "pg_replication_origin_session_setup",
    // Large objects: every call that creates, changes or opens one for writing.
    "lo_create",
    "lo_creat",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    "lo_open",
    "lowrite",
    "lo_truncate",
    "lo_truncate64",
    // Runs arbitrary statements on another server.
    "dblink_exec",
];

/// Advisory lock functions in every variant (session and `xact`, `try`, `shared`,
/// `unlock`): locks are per server, so all must run where the writes run.
const PREFIXES: &[&str] = &["pg_advisory_", "pg_try_advisory_"];

/// The set of function names treated as writes: the built-in ones plus those the
/// configuration adds (`write_functions`, e.g. the application's own functions that
/// write). Names compare case-insensitively; a schema-qualified call such as
/// `pg_catalog.nextval` is matched by its last part.
#[derive(Debug, Clone)]
pub struct WriteFunctions {
    names: HashSet<String>,
}

impl WriteFunctions {
    /// The built-in functions plus `extra`.
    pub fn new(extra: &[String]) -> Self {
        let names = BUILT_IN
            .iter()
            .map(|name| name.to_string())
            .chain(
                extra
                    .iter()
                    .map(|name| last_part(name).to_ascii_lowercase()),
            )
            .collect();
        WriteFunctions { names }
    }

    /// Whether a call to a function named `name` (possibly schema-qualified) writes.
    pub fn contains(&self, name: &str) -> bool {
        let name = last_part(name).to_ascii_lowercase();
        self.names.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
    }

    /// [`Self::contains`] for a parsed name.
    pub(crate) fn contains_object(&self, name: &ObjectName) -> bool {
        name.0
            .last()
            .and_then(|part| part.as_ident())
            .is_some_and(|ident| self.contains(&ident.value))
    }
}

impl Default for WriteFunctions {
    fn default() -> Self {
        WriteFunctions::new(&[])
    }
}

/// `b` of `a.b`; names in the configuration may be written schema-qualified.
fn last_part(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_and_every_advisory_lock_variant() {
        let functions = WriteFunctions::default();
        for name in [
            "nextval",
            "pg_catalog.NEXTVAL",
            "pg_advisory_lock",
            "pg_advisory_xact_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_xact_lock",
            "pg_advisory_unlock_all",
            "txid_current",
            "lo_unlink",
            "dblink_exec",
        ] {
            assert!(functions.contains(name), "{name}");
        }
        for name in [
            "now",
            "count",
            "lo_get",
            "pg_is_in_recovery",
            "advisory_lock",
        ] {
            assert!(!functions.contains(name), "{name}");
        }
    }

    #[test]
    fn extra_names_compare_case_insensitively_by_last_part() {
        let functions = WriteFunctions::new(&["App.Bump_Counter".into(), "audit".into()]);
        assert!(functions.contains("bump_counter"));
        assert!(functions.contains("other_schema.BUMP_COUNTER"));
        assert!(functions.contains("AUDIT"));
        assert!(!functions.contains("app"));
    }
}
