//! Answering `SET` / `RESET` / `SHOW pgshard.*`, and `DEALLOCATE` of a client's own
//! statement, in the session, never on a server.

use pgshard_router::{
    contains_ignoring_case, deallocated_statement, proxy_setting, split_statements,
};

use super::{Flow, Session, MIXED_PROXY_SETTING};
use crate::net::messages::{self, error_response};
use crate::net::{Frame, Severity};

impl Session {
    /// `Some` when the simple query is about a `pgshard.*` setting and has been answered.
    pub(super) async fn proxy_setting(&mut self, query: &Frame) -> Option<Flow> {
        // Looked for in the bytes first: nearly no query mentions one, and the text need
        // not be checked for UTF-8 then.
        let bytes = query.reader().cstr().ok()?;
        if !contains_ignoring_case(bytes, b"pgshard") {
            return None;
        }
        let sql = std::str::from_utf8(bytes).ok()?;
        let statements = split_statements(sql);
        let mut settings = statements.iter().filter_map(|s| proxy_setting(s));
        let setting = settings.next()?;
        // Replies must come in order: let what the server still owes the client arrive first.
        if let Err(flow) = self.drain_pending().await {
            return Some(flow);
        }
        let in_transaction = self.server.as_ref().is_some_and(|s| s.in_transaction());
        let mut replies = match (statements.len(), setting) {
            (1, Ok(setting)) => match self.core.answer_proxy_setting(setting, in_transaction) {
                Ok(frames) => frames,
                Err((code, message)) => vec![error_response(Severity::Error, code, &message)],
            },
            (1, Err(e)) => {
                let message = match e.hint() {
                    Some(hint) => format!("{e}; {hint}"),
                    None => e.to_string(),
                };
                vec![error_response(Severity::Error, e.sqlstate(), &message)]
            }
            _ => vec![error_response(
                Severity::Error,
                "0A000",
                MIXED_PROXY_SETTING,
            )],
        };
        replies.push(messages::ready_for_query(self.status()));
        let flow = self.reply_local(&replies).await;
        self.release_if_idle();
        Some(flow)
    }

    /// `Some` when the simple query is `DEALLOCATE name` of a statement the client prepared
    /// over the extended protocol, and has been answered: on the servers the statement has
    /// a shared name and stays for other clients; only the client's name goes. In a failed
    /// transaction it goes to the server, which refuses it as PostgreSQL would.
    pub(super) async fn deallocate_locally(&mut self, query: &Frame) -> Option<Flow> {
        if self.core.mode != pgshard_config::PoolMode::Transaction {
            return None;
        }
        let bytes = query.reader().cstr().ok()?;
        if !contains_ignoring_case(bytes, b"deallocate") {
            return None;
        }
        let name = deallocated_statement(std::str::from_utf8(bytes).ok()?)?;
        if !self.statements.contains(name.as_bytes()) {
            return None;
        }
        if let Err(flow) = self.drain_pending().await {
            return Some(flow);
        }
        if self.status() == b'E' {
            return None;
        }
        self.statements.close(name.as_bytes());
        self.statements.close(b"");
        let replies = [
            messages::command_complete("DEALLOCATE"),
            messages::ready_for_query(self.status()),
        ];
        let flow = self.reply_local(&replies).await;
        self.release_if_idle();
        Some(flow)
    }

    /// Forwards server replies until every batch sent has been answered.
    pub(super) async fn drain_pending(&mut self) -> Result<(), Flow> {
        while self.pending() > 0 {
            let Some(server) = self.server.as_mut() else {
                return Ok(());
            };
            let frame = server.read().await;
            if let Flow::Stop = self.on_server(frame).await {
                return Err(Flow::Stop);
            }
        }
        Ok(())
    }
}
