//! Large client messages passed on as they arrive, never held whole: a query or an
//! unnamed Parse with large literals, a Bind with large parameters, a large CopyData. The
//! proxy reads a streamed statement's text as it goes by, for its effect on the session;
//! it cannot route what it has not read whole to a replica, so it runs on the primary.
//! A streamed unnamed statement is not kept for preparing again elsewhere: the client
//! keeps its server connection until it replaces that statement.

use std::borrow::Cow;

use pgshard_router::statement_stream::{StatementStream, StreamedStatement};
use pgshard_router::{
    names_internal_statement, proxy_setting, streamed_session_effect, SessionEffect,
    INTERNAL_NAME_MESSAGE,
};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{pin, tracked, Flow, Session, MIXED_PROXY_SETTING};
use crate::frontend::cancel::CANCELED_MESSAGE;
use crate::frontend::engine::StreamOutcome;
use crate::frontend::expect::ReplyAction;
use crate::net::frame::HEADER_LEN;
use crate::net::messages::tag;
use crate::net::{BodyReader, Frame, StreamedHead, WireError};

/// Which large client messages a session takes as a stream at a given moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamedTags {
    query: bool,
    extended: bool,
    copy_data: bool,
}

impl StreamedTags {
    pub(super) fn takes(self, t: u8) -> bool {
        match t {
            tag::QUERY => self.query,
            tag::PARSE | tag::BIND => self.extended,
            tag::COPY_DATA => self.copy_data,
            _ => false,
        }
    }
}

/// The portal and statement names at the start of a streamed Bind (with their
/// terminators), and the statement's name; `None` when they do not fit in its head.
fn bind_names(head: &StreamedHead) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut reader = BodyReader::new(head.body());
    let portal = reader.cstr().ok()?;
    let name = reader.cstr().ok()?;
    Some(([portal, b"\0", name, b"\0"].concat(), name.to_vec()))
}

/// Where the SQL text of a streamed message is, piece by piece: all of a Query's body
/// but its last byte, the string's terminator; a Parse's text runs from after its name
/// (empty: one byte) to the first NUL.
struct SqlText {
    /// Bytes before the text still to come.
    skip: usize,
    /// Bytes of a Query's body still to come; unused for a Parse.
    left: usize,
    parse: bool,
    ended: bool,
}

impl SqlText {
    fn query(body_len: usize) -> SqlText {
        SqlText {
            skip: 0,
            left: body_len,
            parse: false,
            ended: false,
        }
    }

    fn unnamed_parse() -> SqlText {
        SqlText {
            skip: 1,
            left: 0,
            parse: true,
            ended: false,
        }
    }

    fn sql<'a>(&mut self, piece: &'a [u8]) -> &'a [u8] {
        if self.ended {
            return &[];
        }
        if !self.parse {
            let sql = &piece[..piece.len().min(self.left.saturating_sub(1))];
            self.left = self.left.saturating_sub(piece.len());
            return sql;
        }
        let skip = self.skip.min(piece.len());
        self.skip -= skip;
        let piece = &piece[skip..];
        match memchr::memchr(0, piece) {
            Some(end) => {
                self.ended = true;
                &piece[..end]
            }
            None => piece,
        }
    }
}

/// A streamed message's SQL read as it passes: the statements it ended so far, not yet
/// noted.
struct StreamedSql {
    text: SqlText,
    scanner: StatementStream,
    statements: Vec<StreamedStatement>,
}

impl StreamedSql {
    /// Starts reading at the message's first bytes.
    fn new(text: SqlText, head: &StreamedHead) -> StreamedSql {
        let mut sql = StreamedSql {
            text,
            scanner: StatementStream::default(),
            statements: Vec::new(),
        };
        sql.read(head.body());
        sql
    }

    fn read(&mut self, piece: &[u8]) {
        self.scanner
            .feed(self.text.sql(piece), &mut self.statements);
    }

    /// The message ended: its last statement too.
    fn finish(&mut self) {
        self.scanner.finish(&mut self.statements);
    }

    /// Why a statement read so far is not run, as for one read whole.
    fn refusal(&self) -> Option<(&'static str, &'static str)> {
        self.statements.iter().find_map(|stmt| {
            if names_internal_statement(&stmt.text) {
                Some(("42939", INTERNAL_NAME_MESSAGE))
            } else if proxy_setting(&stmt.text).is_some() {
                Some(("0A000", MIXED_PROXY_SETTING))
            } else {
                None
            }
        })
    }
}

/// What a streamed message's statements are, for their bookkeeping.
#[derive(Clone, Copy)]
enum SqlKind {
    /// A simple Query, in batch `batch`.
    Query { batch: u64 },
    /// The unnamed statement of a Parse.
    UnnamedParse,
}

/// Numbers streamed unnamed Parses, so a server's unnamed statement is known to be the
/// client's (see [`ClientStatements::streamed_unnamed`](crate::frontend::statements::ClientStatements::streamed_unnamed)).
static STREAMED_PARSES: AtomicU64 = AtomicU64::new(1);

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
    /// Which large messages can be streamed now: none after an Execute of the open batch
    /// (the server may be busy sending that result, and read nothing until the client
    /// reads it); a query, unless a batch is held (it would go before it); a Parse or
    /// Bind, unless an Execute is held; a CopyData, during a COPY.
    pub(super) fn streamed_tags(&self) -> StreamedTags {
        let after_execute = self.executed_in_batch;
        StreamedTags {
            query: !after_execute && self.held.is_empty(),
            extended: !after_execute && !self.held.holds(tag::EXECUTE),
            copy_data: self.server.is_some(),
        }
    }

    /// The start of a large message taken as a stream: passed on with the rest of it,
    /// or read whole after all when it must be kept (a named Parse, whose statement the
    /// proxy prepares again on other server connections).
    pub(super) async fn on_stream(&mut self, head: StreamedHead) -> StreamOutcome {
        if self.discard_until_sync {
            // Dropped until Sync after an error, as PostgreSQL drops it.
            return StreamOutcome::Passed(self.skip_stream().await);
        }
        let flow = match head.tag() {
            tag::QUERY => self.stream_query(head).await,
            tag::PARSE if head.body().first() == Some(&0) => self.stream_parse(head).await,
            tag::BIND => match bind_names(&head) {
                Some((names, name)) => self.stream_bind(head, names, name).await,
                None => return StreamOutcome::Whole(self.core.client.read_whole(head).await),
            },
            tag::COPY_DATA => {
                self.replay = None;
                self.pass_on(Cow::Borrowed(head.bytes()), None).await
            }
            _ => return StreamOutcome::Whole(self.core.client.read_whole(head).await),
        };
        StreamOutcome::Passed(flow)
    }

    async fn stream_query(&mut self, head: StreamedHead) -> Flow {
        // Replies go out in order, and a server still sending earlier results is not
        // made to read a large message meanwhile.
        if let Err(flow) = self.drain_pending().await {
            return flow;
        }
        let mut sql = StreamedSql::new(SqlText::query(head.message_len() - HEADER_LEN), &head);
        if let Some((code, message)) = sql.refusal() {
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
        let kind = SqlKind::Query { batch };
        if let Some(server) = self.server.as_mut() {
            server.forget_unnamed();
        }
        self.note_statements(kind, &mut sql.statements);
        self.pass_on(Cow::Borrowed(head.bytes()), Some((&mut sql, kind)))
            .await
    }

    /// An unnamed Parse with a large statement: the batch held so far goes first.
    async fn stream_parse(&mut self, head: StreamedHead) -> Flow {
        let mut sql = StreamedSql::new(SqlText::unnamed_parse(), &head);
        if let Some((code, message)) = sql.refusal() {
            return self.refuse_stream(&head, code, message).await;
        }
        if let Err(flow) = self.send_held_first(&head).await {
            return flow;
        }
        self.replay = None;
        self.in_batch = true;
        let batch = self.sent_batches;
        let id = STREAMED_PARSES.fetch_add(1, Ordering::Relaxed);
        if self.core.mode == pgshard_config::PoolMode::Transaction {
            self.parses
                .push(batch, ReplyAction::Forward, Some(Arc::from("")));
            self.statements.set_streamed_unnamed(id);
        }
        if let Some(server) = self.server.as_mut() {
            server.unnamed = None;
            server.streamed_unnamed = Some(id);
        }
        let kind = SqlKind::UnnamedParse;
        self.note_statements(kind, &mut sql.statements);
        self.pass_on(Cow::Borrowed(head.bytes()), Some((&mut sql, kind)))
            .await
    }

    /// The batch held so far goes to the primary, before a large message of it that is
    /// not held until the batch's end to be routed.
    async fn send_held_first(&mut self, head: &StreamedHead) -> Result<(), Flow> {
        if self.server.is_some() {
            return Ok(());
        }
        let held = self.held.take();
        self.server_for_stream(head).await?;
        self.wrote = true;
        for frame in held {
            if self.forward(frame).await.is_err() {
                return Err(self.server_lost().await);
            }
        }
        Ok(())
    }

    async fn stream_bind(&mut self, head: StreamedHead, names: Vec<u8>, name: Vec<u8>) -> Flow {
        if let Err(flow) = self.send_held_first(&head).await {
            return flow;
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
                    None => {
                        let _ = self.skip_rest().await;
                        return self
                            .fatal("08P01", "pgshard: a Bind message too long")
                            .await;
                    }
                }
            }
        };
        self.pass_on(start, None).await
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
    /// arrives, reading its SQL on the way when `sql` is given; a failure is handled.
    async fn pass_on(
        &mut self,
        start: Cow<'_, [u8]>,
        sql: Option<(&mut StreamedSql, SqlKind)>,
    ) -> Flow {
        match self.write_stream(start, sql).await {
            Ok(()) => Flow::Continue,
            Err(failure) => self.stream_failed(failure).await,
        }
    }

    async fn write_stream(
        &mut self,
        start: Cow<'_, [u8]>,
        mut sql: Option<(&mut StreamedSql, SqlKind)>,
    ) -> Result<(), StreamFailure> {
        let Some(server) = self.server.as_mut() else {
            return Err(StreamFailure::Server);
        };
        let mut failed = server.write_streamed(&start).await.is_err();
        loop {
            let piece = match self.core.client.read_rest().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(_) => return Err(StreamFailure::Client),
            };
            if let Some((sql, _)) = sql.as_mut() {
                sql.read(&piece);
            }
            if failed {
                // The rest is read all the same, so the client can be told.
                continue;
            }
            if let Some((sql, kind)) = sql.as_mut() {
                if let Some((code, message)) = sql.refusal() {
                    return Err(StreamFailure::Refused(code, message));
                }
                self.note_statements(*kind, &mut sql.statements);
            }
            let Some(server) = self.server.as_mut() else {
                return Err(StreamFailure::Server);
            };
            failed = server.write_streamed(&piece).await.is_err();
        }
        if let Some((sql, kind)) = sql {
            sql.finish();
            if let Some((code, message)) = sql.refusal() {
                return Err(StreamFailure::Refused(code, message));
            }
            self.note_statements(kind, &mut sql.statements);
        }
        let Some(server) = self.server.as_mut() else {
            return Err(StreamFailure::Server);
        };
        if failed || server.flush().await.is_err() {
            return Err(StreamFailure::Server);
        }
        Ok(())
    }

    /// Statements of a streamed query or Parse read so far: their effects, as for one
    /// read whole.
    fn note_statements(&mut self, kind: SqlKind, statements: &mut Vec<StreamedStatement>) {
        let rewrite = self.core.mode == pgshard_config::PoolMode::Transaction;
        for stmt in statements.drain(..) {
            let effect = tracked(streamed_session_effect(&stmt), stmt.utf8);
            if let SessionEffect::Pin(why) = effect {
                pin(&mut self.pinned, why, rewrite);
            }
            match kind {
                SqlKind::Query { batch } => self
                    .setting_statements
                    .query_statement(batch, &stmt.text, effect),
                SqlKind::UnnamedParse => self.setting_statements.parsed(b"", &stmt.text, effect),
            }
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
