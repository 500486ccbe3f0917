//! `SET` / `RESET` / `SHOW pgshard.role`, answered by the proxy itself: no server ever
//! sees them, since they steer where the session's statements go.

use pgshard_router::{ProxyKey, ProxySetting, ProxyValue, RoleHint};

use crate::net::messages::{command_complete, text_data_row, text_row_description};
use crate::net::Frame;

/// The session's `pgshard.role`: the session value and a `SET LOCAL` one that lasts until
/// the transaction ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionRole {
    session: Option<RoleHint>,
    local: Option<Option<RoleHint>>,
}

impl SessionRole {
    /// The role in force: `None` is `auto` (route by classification).
    pub fn current(&self) -> Option<RoleHint> {
        self.local.unwrap_or(self.session)
    }

    /// Applies a setting and returns the replies a server would send before
    /// ReadyForQuery. `SET LOCAL` outside a transaction has no effect, as in PostgreSQL.
    pub fn apply(&mut self, setting: ProxySetting, in_transaction: bool) -> Vec<Frame> {
        match setting {
            ProxySetting::Set {
                value: ProxyValue::Role(role),
                local,
            } => {
                self.set(role, local, in_transaction);
                vec![command_complete("SET")]
            }
            ProxySetting::Reset {
                key: ProxyKey::Role,
                local,
            } => {
                self.set(None, local, in_transaction);
                vec![command_complete(if local { "SET" } else { "RESET" })]
            }
            ProxySetting::Show(ProxyKey::Role) => {
                let name = format!("pgshard.{}", ProxyKey::Role.name());
                let value = ProxyValue::Role(self.current()).to_string();
                vec![
                    text_row_description(&name),
                    text_data_row(&value),
                    command_complete("SHOW"),
                ]
            }
            // pgshard.shard is handled by `shard_setting` before a role is looked at.
            ProxySetting::Set { .. } => vec![command_complete("SET")],
            ProxySetting::Reset { local, .. } => {
                vec![command_complete(if local { "SET" } else { "RESET" })]
            }
            ProxySetting::Show(key) => vec![
                text_row_description(&format!("pgshard.{}", key.name())),
                text_data_row("auto"),
                command_complete("SHOW"),
            ],
        }
    }

    fn set(&mut self, role: Option<RoleHint>, local: bool, in_transaction: bool) {
        if local {
            if in_transaction {
                self.local = Some(role);
            }
        } else {
            self.session = role;
            self.local = None;
        }
    }

    /// The transaction ended: a `SET LOCAL` value goes.
    pub fn end_transaction(&mut self) {
        self.local = None;
    }
}

/// `SET` / `RESET` / `SHOW pgshard.shard` of a sharded session: `None` for any other
/// key. The error is a SQLSTATE and message for a shard that does not exist.
pub fn shard_setting(
    setting: &ProxySetting,
    shard: &mut Option<usize>,
    shards: usize,
) -> Option<Result<Vec<Frame>, (&'static str, String)>> {
    let frames = match setting {
        ProxySetting::Set {
            value: ProxyValue::Shard(value),
            ..
        } => {
            if let Some(n) = value.filter(|&n| n >= shards) {
                return Some(Err((
                    "22023",
                    format!(
                        "invalid value for parameter \"pgshard.shard\": \"{n}\" (the \
                         database has {shards} shards, numbered from 0)"
                    ),
                )));
            }
            *shard = *value;
            vec![command_complete("SET")]
        }
        ProxySetting::Reset {
            key: ProxyKey::Shard,
            local,
        } => {
            *shard = None;
            vec![command_complete(if *local { "SET" } else { "RESET" })]
        }
        ProxySetting::Show(ProxyKey::Shard) => vec![
            text_row_description("pgshard.shard"),
            text_data_row(&shard.map_or("auto".to_string(), |n| n.to_string())),
            command_complete("SHOW"),
        ],
        _ => return None,
    };
    Some(Ok(frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_local_lasts_one_transaction() {
        let mut role = SessionRole::default();
        role.apply(
            ProxySetting::Set {
                value: ProxyValue::Role(Some(RoleHint::Replica)),
                local: false,
            },
            false,
        );
        role.apply(
            ProxySetting::Set {
                value: ProxyValue::Role(Some(RoleHint::Primary)),
                local: true,
            },
            true,
        );
        assert_eq!(role.current(), Some(RoleHint::Primary));
        role.end_transaction();
        assert_eq!(role.current(), Some(RoleHint::Replica));
        let shown = role.apply(ProxySetting::Show(ProxyKey::Role), false);
        assert_eq!(shown.len(), 3);
        role.apply(
            ProxySetting::Reset {
                key: ProxyKey::Role,
                local: false,
            },
            false,
        );
        assert_eq!(role.current(), None);
    }
}
