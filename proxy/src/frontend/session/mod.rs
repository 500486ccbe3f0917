//! A logged-in client: its messages go to a pooled server connection and the replies
//! come back, with the bookkeeping that lets server connections be shared safely.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use pgshard_config::PoolMode;
use pgshard_router::{pooled_session_effect, split_statements, SessionEffect};

use super::batch::{BatchEnd, HeldBatch};
use super::cancel::CancelTarget;
use super::checkout::CheckoutFailure;
use super::engine::{Event, Executor, SessionCore, StreamOutcome};
use super::expect::{answers_refused_parse, ExpectedReplies, ReplyAction, REFUSED_PARSE};
use super::flow::{clean_for_next_client, fatal, reply_local, Flow};
use super::proxy_settings::SessionRole;
use super::setting_statements::SettingStatements;
use super::settings::effective_value;
use super::statements::{
    bind_statement, is_internal_name, read_parse, refuse_internal_names, rename_bind, retarget,
    statement_memory_refusal, target_of, ClientStatements,
};
use crate::backend::PooledServer;
use crate::net::frame::lossy_text;
use crate::net::messages::{self, error_fields, error_response, tag};
use crate::net::{ClientMessage, Frame, Severity, StreamedHead, WireError};
use crate::routing::{NodeId, NodeLease, ReadNeeds, ShardNodes};

mod dispatch;
mod local_setting;
mod streamed;

/// A statement name that never exists: closing it is a harmless no-op whose
/// CloseComplete stands in for the reply to a message the proxy did not send.
const NO_STATEMENT: &str = "pgshard_none";

/// One client's session; see the module doc.
pub struct Session {
    core: SessionCore,
    statements: ClientStatements,
    server: Option<PooledServer>,
    /// The node `server` belongs to, counted while the session uses it.
    lease: Option<NodeLease>,
    /// When `server` is on the primary: wakes the session if another node becomes the
    /// primary, since the work on the old one is lost.
    primary_watch: Option<tokio::sync::watch::Receiver<Option<usize>>>,
    /// Messages of a batch that has no server yet, held until it is known where to run.
    held: HeldBatch,
    /// A read sent to a replica that nothing has been answered for yet: if the replica
    /// fails now, the read runs again elsewhere instead of failing.
    replay: Option<Replay>,
    /// A read to run again on another node, taken up by the session loop.
    retry: Option<Replay>,
    /// The server has run a batch that may write since it was last idle.
    wrote: bool,
    /// An extended-protocol batch is open on the server (no Sync sent yet), so the server
    /// must not be given back even though nothing awaits a ReadyForQuery.
    in_batch: bool,
    /// An Execute was sent in the open batch: its result may be on its way.
    executed_in_batch: bool,
    /// Why the client keeps its server connection until it leaves (transaction mode).
    pinned: Option<&'static str>,
    /// Queries, Syncs and FunctionCalls sent to the server / ReadyForQuery received.
    sent_batches: u64,
    done_batches: u64,
    parses: ExpectedReplies,
    closes: ExpectedReplies,
    /// Settings statements sent, awaiting their CommandComplete.
    setting_statements: SettingStatements,
    /// Settings confirmed inside an open transaction, applied at its COMMIT.
    staged: Vec<SessionEffect>,
    /// After an error the proxy raised itself mid-batch: drop messages until Sync.
    discard_until_sync: bool,
}

/// A batch kept for running again, and where it has been tried.
struct Replay {
    frames: Vec<Frame>,
    end: BatchEnd,
    needs: ReadNeeds,
    tried: Vec<NodeId>,
}

impl Session {
    pub fn new(core: SessionCore) -> Session {
        Session {
            core,
            statements: ClientStatements::default(),
            server: None,
            lease: None,
            primary_watch: None,
            held: HeldBatch::default(),
            replay: None,
            retry: None,
            wrote: false,
            in_batch: false,
            executed_in_batch: false,
            pinned: None,
            sent_batches: 0,
            done_batches: 0,
            parses: ExpectedReplies::default(),
            closes: ExpectedReplies::default(),
            setting_statements: Default::default(),
            staged: Vec::new(),
            discard_until_sync: false,
        }
    }

    /// Checks out the server that greets the client: its parameters.
    async fn open(&mut self) -> Result<HashMap<String, String>, CheckoutFailure> {
        let result = if self.core.mode == PoolMode::Session {
            // The session keeps this server for good, and its writes must work: the
            // primary only, never a replica because the primary's pool is busy.
            match self.shard().primary() {
                Some(primary) => self.checkout_on(primary, false).await,
                None => Err(CheckoutFailure::Unavailable(
                    "pgshard: no primary is available (a failover is under way); try again"
                        .to_string(),
                )),
            }
        } else {
            // Any node can tell the server parameters: the primary, else a replica, so
            // reads keep working while the primary is down.
            let count = self.shard().nodes.len();
            let primary = self.shard().primary();
            let others = (0..count).map(NodeId).filter(|&n| Some(n) != primary);
            // Nodes failing their health checks last: dialling them may hang until the
            // timeout.
            let (healthy, failing): (Vec<NodeId>, Vec<NodeId>) = primary
                .into_iter()
                .chain(others)
                .partition(|&n| !self.shard().failing(n));
            let mut result = Err(CheckoutFailure::Unavailable(String::new()));
            for node in healthy.into_iter().chain(failing) {
                result = self.checkout_on(node, true).await;
                if matches!(result, Ok(()) | Err(CheckoutFailure::Refused(_))) {
                    break;
                }
            }
            result
        };
        result?;
        Ok(self
            .server
            .as_ref()
            .map(|s| s.params.clone())
            .unwrap_or_default())
    }

    /// Nothing in flight: no reply owed, no batch begun or held before its Sync, no
    /// transaction open.
    fn idle(&self) -> bool {
        self.pending() == 0
            && !self.in_batch
            && self.held.is_empty()
            && self.server.as_ref().is_none_or(|s| !s.in_transaction())
    }

    async fn next_event(&mut self) -> Event {
        let streamed = self.streamed_tags();
        match self.server.as_mut() {
            None => client_event(self.core.client.read_message(|t| streamed.takes(t)).await),
            Some(server) => tokio::select! {
                biased;
                frame = server.read() => Event::Server(frame),
                message = self.core.client.read_message(|t| streamed.takes(t)) => client_event(message),
                _ = primary_changed(&mut self.primary_watch) => Event::PrimaryChanged,
            },
        }
    }

    async fn read_client(&mut self) -> Event {
        let streamed = self.streamed_tags();
        client_event(self.core.client.read_message(|t| streamed.takes(t)).await)
    }

    async fn after_step(&mut self) -> Flow {
        match self.retry.take() {
            Some(replay) => self.resend(replay).await,
            None => Flow::Continue,
        }
    }

    /// Another node became the primary while this session's server is on the old one:
    /// whatever ran there is lost, and the client is told so instead of waiting on a
    /// server that may never answer.
    async fn on_primary_change(&mut self) -> Flow {
        let node = self.lease.as_ref().map(|l| l.node);
        let primary = self.shard().primary();
        if primary.is_some() && node == primary {
            return Flow::Continue;
        }
        self.primary_watch = None;
        if let Some(server) = self.server.as_mut() {
            server.broken = true;
        }
        self.server = None;
        self.lease = None;
        self.core.cancel.clear();
        self.fatal(
            "08006",
            "pgshard: the primary changed (failover); the transaction on the old primary, if \
             any, is lost",
        )
        .await
    }

    /// Batches sent that the server has not answered with a ReadyForQuery yet. Never
    /// below zero: a ReadyForQuery nothing asked for is refused before it is counted.
    fn pending(&self) -> u64 {
        self.sent_batches.saturating_sub(self.done_batches)
    }

    fn shard(&self) -> &Arc<ShardNodes> {
        &self.core.db.shards[0]
    }

    /// What the client's ReadyForQuery would say now.
    fn status(&self) -> u8 {
        self.server.as_ref().map_or(b'I', |s| s.status)
    }

    async fn on_client(&mut self, frame: Frame) -> Flow {
        if self.discard_until_sync {
            if frame.tag() == tag::SYNC {
                self.discard_until_sync = false;
                return self.reply_local(&[messages::ready_for_query(b'I')]).await;
            }
            return Flow::Continue;
        }
        let frame = refuse_internal_names(frame);
        if frame.tag() == tag::QUERY && self.held.is_empty() {
            if let Some(flow) = self.proxy_setting(&frame).await {
                return flow;
            }
            if let Some(flow) = self.deallocate_locally(&frame).await {
                return flow;
            }
        }
        if self.server.is_none() {
            if matches!(
                frame.tag(),
                tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL
            ) {
                // COPY data after the copy ended; PostgreSQL ignores it too.
                return Flow::Continue;
            }
            return match self.held.push(frame) {
                Some((frames, end)) => self.dispatch(frames, end).await,
                None => Flow::Continue,
            };
        }
        // More of the client's work goes to this server: a read held for running again
        // elsewhere would leave it behind, unanswered, if the server failed now.
        self.replay = None;
        let result = self.forward(frame).await;
        if result.is_err() {
            return self.server_lost().await;
        }
        if !self.core.client.has_buffered_frame() {
            if let Some(server) = self.server.as_mut() {
                if server.flush().await.is_err() {
                    return self.server_lost().await;
                }
            }
        }
        Flow::Continue
    }

    /// Sends one client message on, rewriting what transaction pooling must rewrite.
    async fn forward(&mut self, frame: Frame) -> Result<(), WireError> {
        let rewrite = self.core.mode == PoolMode::Transaction;
        let batch = self.sent_batches;
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        match frame.tag() {
            tag::PARSE | tag::BIND | tag::DESCRIBE | tag::CLOSE => self.in_batch = true,
            tag::EXECUTE => {
                self.in_batch = true;
                self.executed_in_batch = true;
            }
            tag::SYNC => {
                self.in_batch = false;
                self.executed_in_batch = false;
            }
            _ => {}
        }
        if rewrite && frame.tag() == tag::PARSE {
            let limit = self.core.ctx.config.proxy.max_prepared_statement_memory;
            let parsed = read_parse(&frame)?;
            if !parsed.name.is_empty() && !self.statements.has_room(&parsed, limit) {
                // Refused before anything about it is remembered.
                self.parses.push(batch, ReplyAction::Refused, None);
                let refused = messages::parse(NO_STATEMENT, REFUSED_PARSE.as_bytes(), &[0, 0]);
                return server.write(&refused).await;
            }
        }
        // A Parse's statement is read for its effect once, for both uses below.
        let parse_effect = if frame.tag() == tag::PARSE {
            read_parse(&frame).ok().map(|parsed| {
                let sql = lossy_text(parsed.query);
                let utf8 = matches!(sql, std::borrow::Cow::Borrowed(_));
                (pooled_session_effect(&sql), utf8)
            })
        } else {
            None
        };
        let setting_effect = match &parse_effect {
            Some((effect, true)) => Some(effect.clone()),
            Some((_, false)) => Some(SessionEffect::None),
            None => None,
        };
        self.setting_statements
            .extended_message(batch, &frame, setting_effect);
        match frame.tag() {
            tag::QUERY => {
                self.sent_batches += 1;
                // A simple Query drops the unnamed statement.
                self.statements.close(b"");
                let sql = lossy_text(frame.reader().cstr().unwrap_or(b""));
                let utf8 = matches!(sql, std::borrow::Cow::Borrowed(_));
                for stmt in split_statements(&sql) {
                    let effect = tracked(pooled_session_effect(stmt), utf8);
                    if let SessionEffect::Pin(why) = effect {
                        pin(&mut self.pinned, why, rewrite);
                    }
                    self.setting_statements.query_statement(batch, stmt, effect);
                }
                server.write(&frame).await
            }
            tag::PARSE if rewrite => {
                let parsed = read_parse(&frame)?;
                if let Some((effect, utf8)) = parse_effect {
                    if let SessionEffect::Pin(why) = tracked(effect, utf8) {
                        self.pinned.get_or_insert(why);
                    }
                }
                if parsed.name.is_empty() {
                    let parse = Frame::new(tag::PARSE, frame.body());
                    self.parses
                        .push(batch, ReplyAction::Forward, Some(Arc::from("")));
                    let result = server.write(&parse).await;
                    self.statements.set_unnamed(parse);
                    return result;
                }
                let stmt = self.statements.prepare(&self.core.ctx.statements, &parsed);
                if server.statements.touch(&stmt.global) {
                    self.closes.push(batch, ReplyAction::AsParseComplete, None);
                    return server.write(&messages::close(b'S', NO_STATEMENT)).await;
                }
                self.parses
                    .push(batch, ReplyAction::Forward, Some(stmt.global.clone()));
                if let Some(evicted) = server.statements.insert(&stmt.global) {
                    self.closes.push(batch, ReplyAction::Swallow, None);
                    server.write(&messages::close(b'S', &evicted)).await?;
                }
                server.write(&stmt.parse).await
            }
            tag::BIND | tag::DESCRIBE if rewrite => {
                let name = if frame.tag() == tag::BIND {
                    bind_statement(&frame)?
                } else {
                    match target_of(&frame)? {
                        (b'S', name) => name,
                        _ => b"",
                    }
                };
                let target = self.statement_for(name, batch).await?;
                let Some(server) = self.server.as_mut() else {
                    return Ok(());
                };
                match target {
                    None => server.write(&frame).await,
                    Some(global) if frame.tag() == tag::BIND => {
                        server.write(&rename_bind(&frame, &global)?).await
                    }
                    Some(global) => server.write(&retarget(&frame, &global)).await,
                }
            }
            tag::CLOSE if rewrite => {
                self.closes.push(batch, ReplyAction::Forward, None);
                match target_of(&frame)? {
                    (b'S', name) if !name.is_empty() => {
                        // The shared statement stays for other clients; only the client's
                        // name goes.
                        self.statements.close(name);
                        server.write(&messages::close(b'S', NO_STATEMENT)).await
                    }
                    (b'S', _) => {
                        self.statements.close(b"");
                        server.write(&frame).await
                    }
                    _ => server.write(&frame).await,
                }
            }
            tag::SYNC | tag::FUNCTION_CALL => {
                self.sent_batches += 1;
                server.write(&frame).await
            }
            _ => server.write(&frame).await,
        }
    }

    /// Readies the server for a Bind or Describe of the client's statement `name` (empty
    /// for the unnamed one): made again there when this server holds another client's
    /// or lacks it. The name the message must carry on the server, when not the client's.
    async fn statement_for(
        &mut self,
        name: &[u8],
        batch: u64,
    ) -> Result<Option<Arc<str>>, WireError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(None);
        };
        if let (true, Some(id)) = (name.is_empty(), self.statements.streamed_unnamed()) {
            // Never kept, so it cannot be made again: the session keeps the server that
            // holds it. On any other server the client gets the server's own error.
            if server.streamed_unnamed != Some(id) {
                self.closes.push(batch, ReplyAction::Swallow, None);
                server.write(&messages::close(b'S', "")).await?;
            }
            return Ok(None);
        }
        if name.is_empty() {
            // The client's unnamed statement, made again here when this server holds
            // another client's (or none); a client without one gets the server's own
            // error for it, never another client's statement.
            match self.statements.unnamed() {
                Some(parse) if server.unnamed.as_ref() == Some(parse) => {}
                Some(parse) => {
                    self.parses.push(batch, ReplyAction::Swallow, None);
                    server.write(&parse.clone()).await?;
                }
                None => {
                    self.closes.push(batch, ReplyAction::Swallow, None);
                    server.write(&messages::close(b'S', "")).await?;
                }
            }
            return Ok(None);
        }
        let Some(stmt) = self.statements.get(name).cloned() else {
            // Another client's statement on this server is not the client's to use.
            return Ok(is_internal_name(name).then(|| Arc::from(NO_STATEMENT)));
        };
        if !server.statements.touch(&stmt.global) {
            // Prepared on another server connection: prepare it here first.
            if let Some(evicted) = server.statements.insert(&stmt.global) {
                self.closes.push(batch, ReplyAction::Swallow, None);
                server.write(&messages::close(b'S', &evicted)).await?;
            }
            self.parses
                .push(batch, ReplyAction::Swallow, Some(stmt.global.clone()));
            server.write(&stmt.parse).await?;
        }
        Ok(Some(stmt.global))
    }

    /// A server message, and every complete one read with it: they are handled in one
    /// turn of the session rather than one turn each.
    async fn on_server(&mut self, frame: Result<Frame, WireError>) -> Flow {
        let mut flow = self.on_server_frame(frame).await;
        while let Flow::Continue = flow {
            let Some(server) = self.server.as_mut().filter(|s| s.conn.has_buffered_frame()) else {
                break;
            };
            let frame = server.read().await;
            flow = self.on_server_frame(frame).await;
        }
        flow
    }

    async fn on_server_frame(&mut self, frame: Result<Frame, WireError>) -> Flow {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(server = %self.lease.as_ref().map_or("?", |l| l.addr()), "server connection failed: {e}");
                return self.server_lost().await;
            }
        };
        let batch = self.done_batches;
        let mut out = Some(frame);
        if self.replay.is_some()
            && out
                .as_ref()
                .is_some_and(|f| f.tag() != tag::PARSE_COMPLETE && f.tag() != tag::CLOSE_COMPLETE)
        {
            // The client is about to hear from this server: the read can no longer move.
            self.replay = None;
        }
        match out.as_ref().map(Frame::tag) {
            Some(tag::PARSE_COMPLETE) => {
                let swallow = self.parses.pop().action == ReplyAction::Swallow;
                out = out.filter(|_| !swallow);
            }
            Some(tag::CLOSE_COMPLETE) => match self.closes.pop().action {
                ReplyAction::Forward | ReplyAction::Refused => {}
                ReplyAction::Swallow => out = None,
                ReplyAction::AsParseComplete => {
                    out = Some(Frame::new(tag::PARSE_COMPLETE, &[]));
                }
            },
            Some(tag::ERROR_RESPONSE) => {
                if self.parses.next_action(batch) == Some(ReplyAction::Refused) {
                    let (code, message) = out.as_ref().map(error_fields).unwrap_or_default();
                    if answers_refused_parse(&code, &message) {
                        let limit = self.core.ctx.config.proxy.max_prepared_statement_memory;
                        let (code, message) =
                            statement_memory_refusal(self.statements.kept(), limit);
                        out = Some(error_response(Severity::Error, code, &message));
                    }
                }
                let skipped = self.parses.skip_batch(batch);
                self.closes.skip_batch(batch);
                for name in skipped {
                    if name.is_empty() {
                        // The client's unnamed Parse failed or never ran: it has none now.
                        self.statements.close(b"");
                    } else if let Some(server) = self.server.as_mut() {
                        server.statements.remove(&name);
                    }
                }
            }
            Some(tag::COMMAND_COMPLETE) => {
                if let Some(f) = &out {
                    self.on_command_complete(f);
                }
            }
            Some(tag::READY_FOR_QUERY) => {
                if self.pending() == 0 {
                    return self.server_violation("a ReadyForQuery").await;
                }
                self.done_batches += 1;
                if self.on_ready(batch) {
                    if let Flow::Stop = self.restore_startup_settings().await {
                        return Flow::Stop;
                    }
                }
            }
            _ => {}
        }
        if let Some(f) = out {
            if self.core.client.write_frame(&f).await.is_err() {
                return Flow::Stop;
            }
        }
        // Released first: a server given back with more frames read (PostgreSQL's
        // FATAL to idle sessions on shutdown arrives right behind a ReadyForQuery) will not
        // be read by this session again, so its replies must be flushed now.
        self.release_if_idle();
        let more = self
            .server
            .as_ref()
            .is_some_and(|s| s.conn.has_buffered_frame());
        if !more && self.core.client.flush().await.is_err() {
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn on_command_complete(&mut self, frame: &Frame) {
        let command = frame.reader().cstr().unwrap_or(b"");
        match command {
            b"SET" | b"RESET" | b"DISCARD ALL" | b"DEALLOCATE ALL" => {
                if let Some(effect) = self.setting_statements.confirmed() {
                    if matches!(effect, SessionEffect::DiscardAll | SessionEffect::ResetAll) {
                        // pgshard.role is a setting too, as far as the client can tell.
                        self.core.role = SessionRole::default();
                    }
                    if effect == SessionEffect::DiscardAll {
                        self.statements.clear();
                        if let Some(server) = self.server.as_mut() {
                            server.statements.clear();
                        }
                    }
                    self.staged.push(effect);
                }
            }
            b"ROLLBACK" => self.staged.clear(),
            _ => {}
        }
    }

    /// Batch `batch` ended with a ReadyForQuery. True when a RESET the client ran has left
    /// the server without some of the client's startup settings.
    fn on_ready(&mut self, batch: u64) -> bool {
        self.setting_statements.batch_done(batch);
        let Some(server) = self.server.as_mut() else {
            return false;
        };
        if server.status == b'I' {
            self.core.role.end_transaction();
            if std::mem::take(&mut self.wrote) {
                // Committed (or rolled back) by now; a replica must have replayed up to a
                // primary position checked after this instant to serve this client.
                self.core.written_at = Some(Instant::now());
            }
            let mut undone = false;
            for effect in self.staged.drain(..) {
                let effect = effective_value(effect, &server.params);
                undone |= self.core.settings.undone_by(&effect);
                self.core.settings.apply(&effect);
            }
            // The server ran the client's own SETs, so it now holds exactly its settings,
            // unless a RESET took it back to the proxy's startup values.
            server.applied_settings = (!undone).then(|| self.core.settings.fingerprint());
            return undone;
        }
        false
    }

    /// After a RESET, sets the client's startup values again, as PostgreSQL's RESET goes
    /// back to the values of the client's own startup packet, and reports them to the
    /// client as the server would have. With more batches already sent, it is left to the
    /// next checkout instead, which replays settings not known to be applied.
    async fn restore_startup_settings(&mut self) -> Flow {
        if self.pending() > 0 {
            return Flow::Continue;
        }
        let sql = self.core.settings.replay_sql();
        let Some(server) = self.server.as_mut() else {
            return Flow::Continue;
        };
        match server.run_quietly(&sql).await {
            Ok(None) => server.applied_settings = Some(self.core.settings.fingerprint()),
            Ok(Some(_)) => return Flow::Continue,
            Err(_) => return self.server_lost().await,
        }
        let mut reported: Vec<_> = server
            .params
            .iter()
            .filter(|(name, _)| self.core.settings.is_startup_setting(name))
            .map(|(name, value)| messages::parameter_status(name, value))
            .collect();
        reported.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for frame in &reported {
            if self.core.client.write_frame(frame).await.is_err() {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// In transaction pooling, gives the server back once the client's transaction and
    /// every batch it sent are complete.
    fn release_if_idle(&mut self) {
        let Some(server) = self.server.as_ref() else {
            return;
        };
        if self.core.mode == PoolMode::Transaction
            && self.pinned.is_none()
            && self.pending() == 0
            && !self.in_batch
            && !server.in_transaction()
            && self.statements.streamed_unnamed().is_none()
        {
            self.server = None;
            self.lease = None;
            self.primary_watch = None;
            self.replay = None;
            self.parses.clear();
            self.closes.clear();
            self.core.cancel.clear();
        }
    }

    /// Checks out a server connection to `node` at the client's settings; `quick` waits no
    /// longer than a connect for a busy pool, for a caller that has other nodes to try.
    async fn checkout_on(&mut self, node: NodeId, quick: bool) -> Result<(), CheckoutFailure> {
        if self.server.is_none() {
            let server = self.core.checkout().node(0, node, quick).await?;
            self.attach(node, server);
        }
        Ok(())
    }

    /// Makes `server`, of `node`, the one this session's messages go to.
    fn attach(&mut self, node: NodeId, server: PooledServer) {
        self.core.cancel.running_on(vec![CancelTarget {
            addr: server.addr.clone(),
            pid: server.pid,
            key: server.secret_key,
        }]);
        self.sent_batches = 0;
        self.done_batches = 0;
        self.in_batch = false;
        self.executed_in_batch = false;
        self.server = Some(server);
        self.lease = Some(self.shard().lease(node));
        self.primary_watch = (self.shard().primary() == Some(node)).then(|| {
            let mut watch = self.shard().primary_changes.clone();
            watch.mark_unchanged();
            watch
        });
    }

    /// A batch that `last` ends is not run: an error in its place, as PostgreSQL would
    /// answer.
    async fn refuse(&mut self, last: &Frame, code: &str, message: &str) -> Flow {
        if code.starts_with("08") {
            tracing::warn!("{message}");
        } else {
            tracing::debug!("refused: {message}");
        }
        let error = error_response(Severity::Error, code, message);
        let status = self.status();
        match last.tag() {
            tag::QUERY | tag::FUNCTION_CALL | tag::SYNC => {
                self.reply_local(&[error, messages::ready_for_query(status)])
                    .await
            }
            _ => {
                self.discard_until_sync = true;
                self.reply_local(&[error]).await
            }
        }
    }

    /// A batch that `last` ends is not run because no server could be had for it: the
    /// reason, or the server's own error when it refused the client's settings.
    async fn refuse_with(&mut self, last: &Frame, failure: CheckoutFailure) -> Flow {
        if let CheckoutFailure::Unavailable(message) = &failure {
            tracing::warn!("{message}");
        }
        let error = failure.error();
        match last.tag() {
            tag::QUERY | tag::FUNCTION_CALL | tag::SYNC => {
                let status = self.status();
                self.reply_local(&[error, messages::ready_for_query(status)])
                    .await
            }
            _ => {
                self.discard_until_sync = true;
                self.reply_local(&[error]).await
            }
        }
    }

    async fn reply_local(&mut self, frames: &[Frame]) -> Flow {
        reply_local(&mut self.core.client, frames).await
    }

    async fn fatal(&mut self, code: &str, message: &str) -> Flow {
        fatal(&mut self.core.client, code, message).await
    }

    /// The server connection broke: the client's work on it is lost, and it is told so
    /// rather than left waiting.
    async fn server_lost(&mut self) -> Flow {
        if let Some(server) = self.server.as_mut() {
            server.broken = true;
        }
        self.server = None;
        let lease = self.lease.take();
        self.core.cancel.clear();
        let addr = lease.as_ref().map_or("?", |l| l.addr()).to_string();
        if let (Some(replay), Some(node)) = (self.replay.take(), lease.as_ref().map(|l| l.node)) {
            // Nothing of this read reached the client: run it on another node.
            tracing::info!(server = %addr, "server failed during a read; running it elsewhere");
            self.shard().ban(node);
            self.parses.clear();
            self.closes.clear();
            self.setting_statements.clear();
            self.in_batch = false;
            self.retry = Some(replay);
            return Flow::Continue;
        }
        self.fatal(
            "08006",
            &format!(
                "pgshard: lost the connection to server {addr}; the transaction, if any, is lost"
            ),
        )
        .await
    }

    /// The server sent `what` where nothing asked for it: it no longer answers what the
    /// session sent it, so whatever it says next cannot be trusted. Its connection is
    /// closed (never given to another client) and the client, whose transaction on it
    /// is lost, is told so with 08P01 instead of being left waiting.
    async fn server_violation(&mut self, what: &str) -> Flow {
        if let Some(server) = self.server.as_mut() {
            server.broken = true;
        }
        self.server = None;
        self.replay = None;
        let lease = self.lease.take();
        self.core.cancel.clear();
        let addr = lease.as_ref().map_or("?", |l| l.addr()).to_string();
        tracing::warn!(server = %addr, "server broke the protocol: {what} nothing asked for");
        self.fatal(
            "08P01",
            &format!(
                "pgshard: server {addr} broke the protocol ({what} nothing asked for); its \
                 connection is closed and the transaction, if any, is lost"
            ),
        )
        .await
    }

    /// The client left: its server connection is reset before another client gets it,
    /// or closed when it cannot be reset.
    async fn finish(&mut self) {
        let pending = self.pending();
        let keep_state = self.core.mode == PoolMode::Session || self.pinned.is_some();
        let abandoned = pending > 0 || self.in_batch;
        if let Some(server) = self.server.as_mut() {
            // Abandoned mid-query or mid-batch (no Sync yet): closed rather than waited
            // for, never handed to another client half-way.
            clean_for_next_client(server, abandoned, keep_state).await;
        }
        self.server = None;
        self.lease = None;
    }
}

/// The session effect a statement's `effect` has on the session, `utf8` when its text
/// was. Text that is not UTF-8 (a client encoding such as LATIN1) is read with its other
/// bytes replaced, which keeps keywords readable; a setting's value could then not be
/// replayed as written, so such a statement pins instead. So does a literal
/// set_config(…, false).
fn tracked(effect: SessionEffect, utf8: bool) -> SessionEffect {
    match effect {
        SessionEffect::Set { .. } | SessionEffect::Reset { .. } if !utf8 => {
            SessionEffect::Pin("a setting sent in an encoding other than UTF-8")
        }
        // Confirmed by its CommandComplete SET/RESET, which a set_config() SELECT does not
        // send: the client keeps its server connection instead.
        SessionEffect::SetRaw { .. } => SessionEffect::Pin("set_config()"),
        effect => effect,
    }
}

/// Why a `SET`/`RESET`/`SHOW pgshard.*` sent with other statements is refused.
const MIXED_PROXY_SETTING: &str = "pgshard: send SET/RESET/SHOW pgshard.* as a query of its \
     own, not together with other statements";

/// Keeps the client on its server connection, for the first reason that needs it.
fn pin(pinned: &mut Option<&'static str>, why: &'static str, rewrite: bool) {
    if pinned.is_none() && rewrite {
        tracing::debug!("client pinned to its server connection: {why}");
    }
    pinned.get_or_insert(why);
}

/// A client message read as the session asked for it, as an event.
fn client_event(message: Result<ClientMessage, WireError>) -> Event {
    match message {
        Ok(ClientMessage::Whole(frame)) => Event::Client(Ok(frame)),
        Ok(ClientMessage::Streamed(head)) => Event::ClientStream(head),
        Err(e) => Event::Client(Err(e)),
    }
}

/// Resolves when the watched primary changes; never without a watch.
async fn primary_changed(watch: &mut Option<tokio::sync::watch::Receiver<Option<usize>>>) {
    match watch {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

impl Executor for Session {
    fn core(&mut self) -> &mut SessionCore {
        &mut self.core
    }

    async fn open(&mut self) -> Result<HashMap<String, String>, CheckoutFailure> {
        Session::open(self).await
    }

    fn opened(&mut self) {
        self.release_if_idle();
    }

    fn idle(&self) -> bool {
        Session::idle(self)
    }

    async fn next_event(&mut self) -> Event {
        Session::next_event(self).await
    }

    fn client_message_ready(&self) -> bool {
        self.core.client.has_buffered_frame()
    }

    async fn on_client(&mut self, frame: Frame) -> Flow {
        Session::on_client(self, frame).await
    }

    async fn read_client(&mut self) -> Event {
        Session::read_client(self).await
    }

    async fn on_client_stream(&mut self, head: StreamedHead) -> StreamOutcome {
        self.on_stream(head).await
    }

    async fn on_server(&mut self, frame: Result<Frame, WireError>) -> Flow {
        Session::on_server(self, frame).await
    }

    async fn on_primary_change(&mut self) -> Flow {
        Session::on_primary_change(self).await
    }

    async fn after_step(&mut self) -> Flow {
        Session::after_step(self).await
    }

    async fn finish(&mut self) {
        Session::finish(self).await
    }

    fn abandon(&mut self) {
        if let Some(server) = self.server.as_mut() {
            server.broken = true;
        }
        self.server = None;
        self.lease = None;
        self.core.cancel.clear();
    }
}
