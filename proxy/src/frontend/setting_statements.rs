//! Settings statements (SET, RESET, DISCARD ALL) on their way to the server, matched to the
//! CommandComplete that confirms each, over both query protocols.

use std::collections::{HashMap, VecDeque};

use pgshard_router::{session_effect, SessionEffect};

use super::statements::{bind_statement, read_parse};
use crate::net::messages::tag;
use crate::net::Frame;

/// The settings statements a client sent and the server has not confirmed yet, in order.
///
/// Each is kept with the batch (Query, or messages up to Sync) it was sent in: a statement
/// an error skipped never gets its CommandComplete, and is forgotten when its batch ends,
/// while later batches already sent (pipelining) keep theirs.
///
/// Over the extended protocol the statement text is in the Parse, but it runs at each
/// Execute of a portal bound to it, so statements and portals that hold one are remembered.
#[derive(Debug, Default)]
pub struct SettingStatements {
    awaited: VecDeque<(u64, SessionEffect)>,
    statements: HashMap<Vec<u8>, SessionEffect>,
    portals: HashMap<Vec<u8>, SessionEffect>,
}

impl SettingStatements {
    /// A statement of a simple Query in batch `batch`, with its session effect.
    pub fn query_statement(&mut self, batch: u64, stmt: &str, effect: SessionEffect) {
        if let Some(effect) = setting_effect(stmt, effect) {
            self.awaited.push_back((batch, effect));
        }
    }

    /// Notes a Parse, Bind or Execute sent in batch `batch`; an Execute of a settings
    /// statement is then awaited. A Parse's statement is read for its effect here unless
    /// the caller read it already and passes it as `parse_effect`.
    pub fn extended_message(
        &mut self,
        batch: u64,
        frame: &Frame,
        parse_effect: Option<SessionEffect>,
    ) {
        match frame.tag() {
            tag::PARSE => {
                let Ok(parsed) = read_parse(frame) else {
                    return;
                };
                let query = std::str::from_utf8(parsed.query).unwrap_or("");
                let effect = parse_effect.unwrap_or_else(|| session_effect(query));
                self.parsed(parsed.name, query, effect);
            }
            tag::BIND => {
                let (Some(portal), Ok(statement)) = (first_cstr(frame), bind_statement(frame))
                else {
                    return;
                };
                match self.statements.get(statement) {
                    Some(effect) => self.portals.insert(portal.to_vec(), effect.clone()),
                    None => self.portals.remove(portal),
                };
            }
            tag::EXECUTE => {
                if let Some(effect) = first_cstr(frame).and_then(|p| self.portals.get(p)) {
                    self.awaited.push_back((batch, effect.clone()));
                }
            }
            _ => {}
        }
    }

    /// Notes statement `name` prepared from `query`, whose effect is `effect`: its
    /// Executes are then awaited when it is a settings statement.
    pub fn parsed(&mut self, name: &[u8], query: &str, effect: SessionEffect) {
        match setting_effect(query, effect) {
            Some(effect) => self.statements.insert(name.to_vec(), effect),
            None => self.statements.remove(name),
        };
    }

    /// The statement a SET, RESET, DISCARD ALL or DEALLOCATE ALL CommandComplete confirms.
    pub fn confirmed(&mut self) -> Option<SessionEffect> {
        self.awaited.pop_front().map(|(_, effect)| effect)
    }

    /// Batch `batch` ended with its ReadyForQuery: what it left unconfirmed never ran.
    pub fn batch_done(&mut self, batch: u64) {
        self.awaited.retain(|(b, _)| *b > batch);
    }

    /// Nothing sent is awaited any more (the batches will be sent again, or never answered).
    pub fn clear(&mut self) {
        self.awaited.clear();
    }
}

/// The effect of `stmt` if its CommandComplete says SET, RESET, DISCARD ALL or DEALLOCATE
/// ALL. `SessionEffect::None` for those that change nothing beyond their transaction
/// (SET LOCAL, SET TRANSACTION …), which must still be matched to their CommandComplete.
fn setting_effect(stmt: &str, effect: SessionEffect) -> Option<SessionEffect> {
    let first = stmt.split_whitespace().next().unwrap_or("");
    let setting = first.eq_ignore_ascii_case("set")
        || first.eq_ignore_ascii_case("reset")
        || matches!(effect, SessionEffect::DiscardAll);
    setting.then_some(effect)
}

/// The first field of a Bind (its portal) or an Execute (the portal it runs).
fn first_cstr(frame: &Frame) -> Option<&[u8]> {
    frame.reader().cstr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::messages::parse;

    fn set(name: &str, value: &str) -> SessionEffect {
        SessionEffect::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    fn bind(portal: &str, statement: &str) -> Frame {
        let body = format!("{portal}\0{statement}\0\0\0\0\0\0\0");
        Frame::new(tag::BIND, body.as_bytes())
    }

    fn execute(portal: &str) -> Frame {
        let body = format!("{portal}\0\0\0\0\0");
        Frame::new(tag::EXECUTE, body.as_bytes())
    }

    #[test]
    fn an_extended_set_is_awaited_at_each_execute() {
        let mut s = SettingStatements::default();
        s.extended_message(0, &parse("s1", b"SET work_mem = '8MB'", &[0, 0]), None);
        s.extended_message(0, &parse("s2", b"SELECT 1", &[0, 0]), None);
        s.extended_message(0, &bind("", "s2"), None);
        s.extended_message(0, &execute(""), None);
        assert_eq!(s.confirmed(), None, "a SELECT is no settings statement");
        s.extended_message(0, &bind("", "s1"), None);
        s.extended_message(0, &execute(""), None);
        s.extended_message(1, &execute(""), None);
        assert_eq!(s.confirmed(), Some(set("work_mem", "'8MB'")));
        assert_eq!(s.confirmed(), Some(set("work_mem", "'8MB'")));
        assert_eq!(s.confirmed(), None);
    }

    #[test]
    fn a_batch_forgets_only_its_own_unconfirmed_statements() {
        let mut s = SettingStatements::default();
        let stmt = "SET lock_timeout = '1s'";
        s.query_statement(0, stmt, session_effect(stmt));
        s.query_statement(0, "SELECT 1", SessionEffect::None);
        s.query_statement(1, "SET LOCAL work_mem = '1MB'", SessionEffect::None);
        // Batch 0 failed before its SET ran; batch 1 was already sent.
        s.batch_done(0);
        assert_eq!(s.confirmed(), Some(SessionEffect::None));
        s.batch_done(1);
        assert_eq!(s.confirmed(), None);
    }
}
