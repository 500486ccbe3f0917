//! Large client messages passed on as they arrive, never held whole: a query with large
//! literals, a Bind with large parameters, a large CopyData. The proxy reads a streamed
//! query's statements as they go by, for their effect on the session; it cannot route
//! a query it has not read whole to a replica, so such a query runs on the primary.

use std::borrow::Cow;

use pgshard_router::statement_stream::{StatementStream, StreamedStatement};
use pgshard_router::{
    names_internal_statement, proxy_setting, streamed_session_effect, SessionEffect,
    INTERNAL_NAME_MESSAGE,
};

use super::{tracked, Flow, Session};
use crate::frontend::cancel::CANCELED_MESSAGE;
use crate::net::frame::HEADER_LEN;
use crate::net::messages::tag;
use crate::net::{BodyReader, Frame, StreamedHead, WireError};

/// Which large client messages a session takes as a stream at a given moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamedTags {
    query: bool,
    bind: bool,
    copy_data: bool,
}

impl StreamedTags {
    pub(super) fn takes(self, t: u8) -> bool {
        match t {
            tag::QUERY => self.query,
            tag::BIND => self.bind,
            tag::COPY_DATA => self.copy_data,
            _ => false,
        }
    }
}

/// Why a statement of a streamed query is not run: the SQLSTATE and message the client
/// gets, as for the same statement in a query read whole.
fn refusal(statements: &[StreamedStatement]) -> Option<(&'static str, &'static str)> {
    statements.iter().find_map(|stmt| {
        if names_internal_statement(&stmt.text) {
            Some(("42939", INTERNAL_NAME_MESSAGE))
        } else if proxy_setting(&stmt.text).is_some() {
            Some((
                "0A000",
                "pgshard: send SET/RESET/SHOW pgshard.* as a query of its own, not together \
                 with other statements",
            ))
        } else {
            None
        }
    })
}

/// The statement text of a streamed query, piece by piece: every byte of the body but
/// its last, the string's terminator.
struct QueryText {
    left: usize,
}

impl QueryText {
    fn sql<'a>(&mut self, piece: &'a [u8]) -> &'a [u8] {
        let sql = &piece[..piece.len().min(self.left.saturating_sub(1))];
        self.left = self.left.saturating_sub(piece.len());
        sql
    }
}

/// How passing a streamed message on ended, when not as it should.
enum StreamFailure {
    /// The client's side failed (gone, or closed inside the message).
    Client,
    /// The server's side failed.
    Server,
    /// A statement the proxy refuses (SQLSTATE, message) showed after part of the query
    /// had gone to the server.
    Refused(&'static str, &'static str),
}

impl Session {
    /// Which large messages can be streamed now. A query, unless a batch is held (it
    /// would go before it); a Bind, unless an Execute was sent in its batch (the server
    /// may be busy sending that result, and not read until the client reads it); a
    /// CopyData, during a COPY.
    pub(super) fn streamed_tags(&self) -> StreamedTags {
        StreamedTags {
            query: self.held.is_empty(),
            bind: !self.executed_in_batch && !self.held.holds(tag::EXECUTE),
            copy_data: self.server.is_some(),
        }
    }

    /// The start of a large message taken as a stream: passed on with the rest of it.
    pub(super) async fn on_stream(&mut self, head: StreamedHead) -> Flow {
        if self.discard_until_sync {
            // Dropped until Sync after an error, as PostgreSQL drops it.
            return self.skip_stream().await;
        }
        match head.tag() {
            tag::QUERY => self.stream_query(head).await,
            tag::BIND => self.stream_bind(head).await,
            _ => {
                // A CopyData, taken only during a COPY.
                self.replay = None;
                match self.pass_on(Cow::Borrowed(head.bytes()), None).await {
                    Ok(()) => Flow::Continue,
                    Err(failure) => self.stream_failed(failure).await,
                }
            }
        }
    }

    async fn stream_query(&mut self, head: StreamedHead) -> Flow {
        // Replies go out in order, and a server still sending earlier results is not
        // made to read a large message meanwhile.
        if let Err(flow) = self.drain_pending().await {
            return flow;
        }
        let mut text = QueryText {
            left: head.message_len() - HEADER_LEN,
        };
        let mut scanner = StatementStream::default();
        let mut statements = Vec::new();
        scanner.feed(text.sql(head.body()), &mut statements);
        if let Some((code, message)) = refusal(&statements) {
            return self.refuse_stream(&head, code, message).await;
        }
        if let Err(flow) = self.server_for_stream(&head).await {
            return flow;
        }
        self.wrote = true;
        self.replay = None;
        let batch = self.sent_batches;
        self.sent_batches += 1;
        // A simple Query drops the unnamed statement.
        self.statements.close(b"");
        self.note_statements(batch, &mut statements);
        let read = Some((&mut scanner, &mut text, batch));
        match self.pass_on(Cow::Borrowed(head.bytes()), read).await {
            Ok(()) => Flow::Continue,
            Err(failure) => self.stream_failed(failure).await,
        }
    }

    async fn stream_bind(&mut self, head: StreamedHead) -> Flow {
        let mut reader = BodyReader::new(head.body());
        let (Ok(portal), Ok(name)) = (reader.cstr(), reader.cstr()) else {
            let _ = self.skip_stream().await;
            return self
                .fatal(
                    "08P01",
                    "pgshard: a Bind message whose names do not fit in its first 64 kB",
                )
                .await;
        };
        let names = [portal, b"\0", name, b"\0"].concat();
        let name = name.to_vec();
        if self.server.is_none() {
            // The batch so far goes first, to the primary: a batch with a large Bind is
            // not held until its end to be routed.
            let held = self.held.take();
            if let Err(flow) = self.server_for_stream(&head).await {
                return flow;
            }
            self.wrote = true;
            for frame in held {
                if self.forward(frame).await.is_err() {
                    return self.server_lost().await;
                }
            }
        }
        self.replay = None;
        let batch = self.sent_batches;
        self.in_batch = true;
        self.setting_statements
            .extended_message(batch, &Frame::new(tag::BIND, &names), None);
        let target = if self.core.mode == pgshard_config::PoolMode::Transaction {
            match self.statement_for(&name, batch).await {
                Ok(target) => target,
                Err(_) => return self.server_lost().await,
            }
        } else {
            None
        };
        let start = match target {
            None => Cow::Borrowed(head.bytes()),
            Some(global) => {
                let portal = &names[..names.len() - name.len() - 1];
                let renamed = [portal, global.as_bytes(), b"\0"].concat();
                match head.with_body_start(names.len(), &renamed) {
                    Some(start) => Cow::Owned(start),
                    None => return self.server_lost().await,
                }
            }
        };
        match self.pass_on(start, None).await {
            Ok(()) => Flow::Continue,
            Err(failure) => self.stream_failed(failure).await,
        }
    }

    /// Checks out the primary for a streamed message when the session has no server.
    /// On failure the message is dropped and the client told, as for a batch.
    async fn server_for_stream(&mut self, head: &StreamedHead) -> Result<(), Flow> {
        if self.server.is_some() {
            return Ok(());
        }
        self.core.cancel.waiting();
        let checkout = self.core.checkout().primary(0).await;
        let canceled = self.core.cancel.sending();
        match checkout {
            Ok((node, server)) => self.attach(node, server),
            Err(failure) => {
                self.skip_rest().await?;
                return Err(self.refuse_with(&head.stand_in(), failure).await);
            }
        }
        if canceled {
            self.release_if_idle();
            return Err(self.refuse_stream(head, "57014", CANCELED_MESSAGE).await);
        }
        if let Some(lease) = &self.lease {
            lease.served_one();
        }
        Ok(())
    }

    /// Writes `start` and then the rest of the client's message to the server as it
    /// arrives, reading a query's statements on the way when `query` is given.
    async fn pass_on(
        &mut self,
        start: Cow<'_, [u8]>,
        mut query: Option<(&mut StatementStream, &mut QueryText, u64)>,
    ) -> Result<(), StreamFailure> {
        let Some(server) = self.server.as_mut() else {
            return Err(StreamFailure::Server);
        };
        let mut failed = server.conn.write_bytes(&start).await.is_err();
        let mut statements = Vec::new();
        loop {
            let piece = match self.core.client.read_rest().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(_) => return Err(StreamFailure::Client),
            };
            if let Some((scanner, text, _)) = query.as_mut() {
                scanner.feed(text.sql(&piece), &mut statements);
            }
            if failed {
                // The rest is read all the same, so the client can be told.
                continue;
            }
            if let Some((_, _, batch)) = &query {
                if let Some((code, message)) = refusal(&statements) {
                    return Err(StreamFailure::Refused(code, message));
                }
                self.note_statements(*batch, &mut statements);
            }
            let Some(server) = self.server.as_mut() else {
                return Err(StreamFailure::Server);
            };
            failed = server.conn.write_bytes(&piece).await.is_err();
        }
        if let Some((scanner, _, batch)) = query {
            scanner.finish(&mut statements);
            if let Some((code, message)) = refusal(&statements) {
                return Err(StreamFailure::Refused(code, message));
            }
            self.note_statements(batch, &mut statements);
        }
        let Some(server) = self.server.as_mut() else {
            return Err(StreamFailure::Server);
        };
        if failed || server.flush().await.is_err() {
            return Err(StreamFailure::Server);
        }
        Ok(())
    }

    /// Statements of a streamed query read so far: their effects, as for a query read
    /// whole.
    fn note_statements(&mut self, batch: u64, statements: &mut Vec<StreamedStatement>) {
        let rewrite = self.core.mode == pgshard_config::PoolMode::Transaction;
        for stmt in statements.drain(..) {
            let effect = tracked(streamed_session_effect(&stmt), stmt.utf8);
            if let SessionEffect::Pin(why) = effect {
                if self.pinned.is_none() && rewrite {
                    tracing::debug!("client pinned to its server connection: {why}");
                }
                self.pinned.get_or_insert(why);
            }
            self.setting_statements
                .query_statement(batch, &stmt.text, effect);
        }
    }

    async fn stream_failed(&mut self, failure: StreamFailure) -> Flow {
        if let Some(server) = self.server.as_mut() {
            // Part of a message went to it: it is never used again.
            server.broken = true;
        }
        match failure {
            StreamFailure::Client => {
                self.server = None;
                self.lease = None;
                self.core.cancel.clear();
                Flow::Stop
            }
            StreamFailure::Server => self.server_lost().await,
            StreamFailure::Refused(code, message) => {
                // Closed before it runs anything of the query.
                self.server = None;
                self.lease = None;
                self.replay = None;
                self.core.cancel.clear();
                let message = format!(
                    "{message}; the query had partly gone to the server, so its connection \
                     is closed and the transaction, if any, is lost"
                );
                self.fatal(code, &message).await
            }
        }
    }

    /// A streamed message refused before any of it went to a server: the rest is read
    /// and dropped, and the client answered as for a message read whole.
    async fn refuse_stream(&mut self, head: &StreamedHead, code: &str, message: &str) -> Flow {
        if let Err(flow) = self.skip_rest().await {
            return flow;
        }
        self.refuse(&head.stand_in(), code, message).await
    }

    async fn skip_stream(&mut self) -> Flow {
        match self.skip_rest().await {
            Ok(()) => Flow::Continue,
            Err(flow) => flow,
        }
    }

    async fn skip_rest(&mut self) -> Result<(), Flow> {
        loop {
            match self.core.client.read_rest().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(WireError::Closed) | Err(_) => return Err(Flow::Stop),
            }
        }
    }
}
