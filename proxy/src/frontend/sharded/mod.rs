//! A client of a sharded database: each statement is planned by the router, sent to the
//! shards it needs (each shard keeping its read/write split), and their replies are
//! merged into the one answer a single server would give.
//!
//! Server connections are held per shard only while a statement or a transaction needs
//! them (transaction pooling); in session pooling they stay for the whole session.

use std::collections::HashMap;
use std::sync::Arc;

use pgshard_config::PoolMode;
use pgshard_router::plan::{PlanError, Planner};

use super::checkout::CheckoutFailure;
use super::engine::{Event, Executor, SessionCore};
use super::flow::{clean_for_next_client, fatal, reply_local, Flow};
use crate::net::messages::{self, error_response, tag};
use crate::net::{Frame, Severity, Unasked, WireError};

mod bind;
mod commit;
mod copy;
mod copy_out;
mod cursor;
mod execute;
mod extended;
mod link;
mod merge_rows;
mod replies;
mod row_limit;
mod row_stream;
mod savepoint;
mod simple;
mod transaction;
mod write_counts;

use bind::{Portal, PreparedStatements};
use link::ShardLink;
use replies::Lost;
use transaction::{ImplicitBlock, TxnState};

/// Why a statement whose text is not UTF-8 is refused: the planner reads SQL as UTF-8.
const NOT_UTF8: &str = "pgshard: statements on a sharded database must be sent in UTF-8; \
                        set client_encoding to UTF8";

/// One client's session on a sharded database; see the module doc.
pub struct ShardedSession {
    core: SessionCore,
    planner: Arc<Planner>,
    /// The server held on each shard, if any.
    links: Vec<Option<ShardLink>>,
    txn: TxnState,
    /// Whether the statements running now form one implicit transaction.
    block: ImplicitBlock,
    /// A client message read ahead (to learn whether an Execute ends its batch), handled
    /// before the next one is read.
    read_ahead: Option<Result<Frame, WireError>>,
    /// Settings statements confirmed inside the open transaction, applied at COMMIT.
    staged: Vec<pgshard_router::SessionEffect>,
    statements: PreparedStatements,
    portals: HashMap<String, Portal>,
    /// Portals the client asked to describe; answered with their execution.
    described: std::collections::HashSet<String>,
    /// The row limit of the Execute running now, if it has one.
    row_limit: Option<row_limit::RowLimit>,
    /// Portals an Execute with a row limit left suspended whose replies passed through
    /// unmerged: they cannot be resumed.
    suspended: std::collections::HashSet<String>,
    /// Portals resumed to their end: a further Execute returns no rows, as PostgreSQL's
    /// does for a portal run to completion.
    fetched_to_end: std::collections::HashSet<String>,
    /// Merged results of suspended portals, resumed by their next Execute.
    portal_streams: HashMap<String, row_stream::RowStream>,
    /// The stream of the Execute running now, if its row limit suspended it.
    suspending: Option<row_stream::RowStream>,
    /// The client's cursors (DECLARE … CURSOR), by name.
    cursors: HashMap<String, cursor::Cursor>,
    /// After an error in an extended-protocol batch: drop messages until Sync.
    discard_until_sync: bool,
    /// Extended-protocol messages came since the last Sync: the client waits for the
    /// batch's ReadyForQuery.
    in_batch: bool,
    /// The statement running now came through the extended protocol: a COPY it starts
    /// must be followed by a Sync to each shard.
    copy_needs_sync: bool,
    /// Spreads statements any shard can answer.
    turn: usize,
    /// The ParameterStatus values the client was last told: a shard's report reaches the
    /// client only when it changes one, whichever shard ran the statement.
    reported: HashMap<String, String>,
    /// The statement running now asked for a replica (`/* pgshard: role=replica */`), so
    /// its reads skip read-your-writes as on a one-shard database.
    replica_hint: bool,
    /// A settings statement is running: the servers it ran on no longer hold the settings
    /// the proxy last recorded for them, so they are replayed at their next checkout.
    changing_settings: bool,
}

impl ShardedSession {
    pub fn new(core: SessionCore, planner: Arc<Planner>) -> ShardedSession {
        let shards = core.db.shards.len();
        ShardedSession {
            core,
            planner,
            links: (0..shards).map(|_| None).collect(),
            txn: TxnState::Idle,
            block: ImplicitBlock::Off,
            read_ahead: None,
            staged: Vec::new(),
            statements: PreparedStatements::default(),
            portals: HashMap::new(),
            described: Default::default(),
            row_limit: None,
            suspended: Default::default(),
            fetched_to_end: Default::default(),
            portal_streams: HashMap::new(),
            suspending: None,
            cursors: HashMap::new(),
            discard_until_sync: false,
            in_batch: false,
            copy_needs_sync: false,
            turn: rand::random::<usize>() % shards.max(1),
            reported: HashMap::new(),
            replica_hint: false,
            changing_settings: false,
        }
    }

    /// Checks that a server answers (the first shard that has a node to read from): its
    /// parameters greet the client.
    async fn open(&mut self) -> Result<HashMap<String, String>, CheckoutFailure> {
        let needs = crate::routing::ReadNeeds { written_at: None };
        let mut result = Err(CheckoutFailure::Unavailable(
            "pgshard: the database has no shards configured".to_string(),
        ));
        for shard in 0..self.links.len() {
            result = link::checkout(&mut self.core.checkout(), shard, link::Need::Read(needs))
                .await
                .map(|link| (shard, link));
            if matches!(result, Ok(_) | Err(CheckoutFailure::Refused(_))) {
                break;
            }
        }
        let (shard, mut link) = result?;
        if self.core.db.bytewise_text.get().is_none() {
            let sql = "SELECT datcollate FROM pg_database WHERE datname = current_database()";
            if let Ok(Some(collation)) = link.server.query_value(sql).await {
                let bytewise = matches!(
                    collation.to_ascii_lowercase().as_str(),
                    "c" | "posix" | "c.utf-8" | "c.utf8"
                );
                let _ = self.core.db.bytewise_text.set(bytewise);
            }
        }
        self.reported = link.server.params.clone();
        self.links[shard] = Some(link);
        Ok(self.reported.clone())
    }

    async fn next_event(&mut self) -> Event {
        match self.read_ahead.take() {
            Some(frame) => Event::Client(frame),
            None => Event::Client(self.core.client.read_frame().await),
        }
    }

    async fn on_client(&mut self, frame: Frame) -> Flow {
        if let Some(flow) = self.check_held_links().await {
            return flow;
        }
        if self.discard_until_sync && frame.tag() != tag::SYNC {
            return Flow::Continue;
        }
        self.in_batch = matches!(
            frame.tag(),
            tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE | tag::FLUSH
        ) || (self.in_batch && frame.tag() != tag::SYNC);
        match frame.tag() {
            tag::QUERY => self.on_query(&frame).await,
            tag::PARSE => self.on_parse(&frame).await,
            tag::BIND => self.on_bind(&frame).await,
            tag::DESCRIBE => self.on_describe(&frame).await,
            tag::EXECUTE => self.on_execute(&frame).await,
            tag::CLOSE => self.on_close(&frame).await,
            tag::SYNC => self.on_sync().await,
            tag::FLUSH => match self.core.client.flush().await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Stop,
            },
            // COPY data after the copy ended; PostgreSQL ignores it too.
            tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => Flow::Continue,
            tag::FUNCTION_CALL => {
                self.error_reply(
                    "0A000",
                    "pgshard: the function call protocol is not supported on a sharded \
                     database; call the function with SELECT",
                    true,
                )
                .await
            }
            other => {
                self.fatal("08P01", &format!("invalid frontend message type {other}"))
                    .await
            }
        }
    }

    /// Servers held between statements owe nothing and say nothing. One that sent
    /// something unasked (a stray ReadyForQuery: it broke the protocol) or closed cannot
    /// run the next statement, whose replies would be taken from what it sent: every held
    /// server is closed, the transaction is lost, and the client is told so.
    async fn check_held_links(&mut self) -> Option<Flow> {
        // A suspended portal's shards still owe its rows: those were asked for.
        let reading: Vec<usize> = (0..self.links.len())
            .filter(|&shard| self.portal_streams.values().any(|s| s.reading(shard)))
            .collect();
        let (shard, unasked) = self
            .links
            .iter_mut()
            .enumerate()
            .filter(|(shard, _)| !reading.contains(shard))
            .filter_map(|(shard, slot)| Some((shard, slot.as_mut()?)))
            .map(|(shard, link)| (shard, link.server.conn.unasked()))
            .find(|(_, unasked)| *unasked != Unasked::Nothing)?;
        let reason = match unasked {
            Unasked::Sent => {
                for link in self.links.iter_mut().flatten() {
                    link.server.broken = true;
                }
                self.links.iter_mut().for_each(|slot| *slot = None);
                self.txn = TxnState::Idle;
                tracing::warn!(
                    shard,
                    "server broke the protocol: a message nothing asked for"
                );
                let message = format!(
                    "pgshard: the server of shard {shard} broke the protocol (a message nothing \
                     asked for); its connection is closed and the transaction, if any, is lost"
                );
                return Some(self.fatal("08P01", &message).await);
            }
            _ => "the server closed the connection".to_string(),
        };
        self.lost(Lost { shard, reason }).await;
        Some(Flow::Stop)
    }

    /// Sends an error; `ready` adds the ReadyForQuery a simple query (or Sync) ends with,
    /// else the extended batch is skipped up to its Sync.
    async fn error_reply(&mut self, code: &str, message: &str, ready: bool) -> Flow {
        tracing::debug!("refused: {message}");
        self.txn.fail();
        let mut frames = vec![error_response(Severity::Error, code, message)];
        if ready {
            frames.push(messages::ready_for_query(self.txn.status()));
        } else {
            self.discard_until_sync = true;
        }
        self.reply_local(&frames).await
    }

    /// The error for a statement the planner refused.
    fn plan_error(e: &PlanError) -> (&'static str, String) {
        (e.sqlstate(), e.to_string())
    }

    async fn reply_local(&mut self, frames: &[Frame]) -> Flow {
        reply_local(&mut self.core.client, frames).await
    }

    async fn fatal(&mut self, code: &str, message: &str) -> Flow {
        fatal(&mut self.core.client, code, message).await
    }

    /// Gives the servers back when no transaction needs them (transaction pooling).
    fn release_links(&mut self) {
        if self.txn.is_open() || self.core.mode == PoolMode::Session {
            return;
        }
        for (shard, slot) in self.links.iter_mut().enumerate() {
            if self
                .portal_streams
                .values()
                .chain(self.suspending.as_ref())
                .any(|s| s.reading(shard))
            {
                // Mid-reply for a suspended portal, resumed by the next Execute.
                continue;
            }
            if let Some(link) = slot.as_mut() {
                if link.server.in_transaction() {
                    // Left mid-transaction by a failure: never hand it to another client.
                    link.server.broken = true;
                }
                if self.changing_settings {
                    link.server.applied_settings = None;
                }
            }
            *slot = None;
        }
        self.core.cancel.clear();
    }

    /// The client left: servers mid-transaction are closed, the others reset when they
    /// carry session state.
    async fn finish(&mut self) {
        let keep_state = self.core.mode == PoolMode::Session;
        let streams = std::mem::take(&mut self.portal_streams);
        for (shard, slot) in self.links.iter_mut().enumerate() {
            if let Some(link) = slot.as_mut() {
                if streams.values().any(|s| s.reading(shard)) {
                    // Mid-reply: never handed to another client.
                    link.server.broken = true;
                }
                clean_for_next_client(&mut link.server, false, keep_state).await;
            }
            *slot = None;
        }
    }
}

impl Executor for ShardedSession {
    fn core(&mut self) -> &mut SessionCore {
        &mut self.core
    }

    async fn open(&mut self) -> Result<HashMap<String, String>, CheckoutFailure> {
        ShardedSession::open(self).await
    }

    fn opened(&mut self) {
        self.release_links();
    }

    /// Between transactions and batches: no implicit transaction of an extended batch
    /// open on the shards, no client message read ahead and waiting (a Sync whose
    /// ReadyForQuery the client still expects).
    fn idle(&self) -> bool {
        !self.txn.is_open()
            && self.read_ahead.is_none()
            && matches!(self.block, ImplicitBlock::Off)
            && !self.discard_until_sync
            && !self.in_batch
    }

    fn client_message_ready(&self) -> bool {
        // A message read ahead comes first, from next_event.
        self.read_ahead.is_none() && self.core.client.has_buffered_frame()
    }

    async fn next_event(&mut self) -> Event {
        ShardedSession::next_event(self).await
    }

    async fn on_client(&mut self, frame: Frame) -> Flow {
        ShardedSession::on_client(self, frame).await
    }

    /// Planned statements read their servers' replies themselves; nothing else comes.
    async fn on_server(&mut self, _frame: Result<Frame, WireError>) -> Flow {
        Flow::Continue
    }

    async fn on_primary_change(&mut self) -> Flow {
        Flow::Continue
    }

    async fn after_step(&mut self) -> Flow {
        Flow::Continue
    }

    async fn finish(&mut self) {
        ShardedSession::finish(self).await
    }

    fn abandon(&mut self) {
        for slot in &mut self.links {
            if let Some(link) = slot.as_mut() {
                link.server.broken = true;
            }
            *slot = None;
        }
        self.core.cancel.clear();
    }
}

/// The readers of the messages this session takes apart, for the fuzzer.
#[cfg(test)]
pub(crate) mod message_readers {
    pub use super::bind::{read_bind, read_parse};
}
