//! The session engine: one client from its greeting to its goodbye, whatever kind of
//! database it uses. The engine owns what every session has (the client connection, who
//! it is, its settings, its pools, read-your-writes, its cancel key) and the session's
//! life: choosing the server that greets it, the greeting, the event loop, the shutdown
//! notice, the checks every client message gets, and the cleanup when the client goes.
//! What to do with a statement is the executor's: [`PassThrough`](super::session::Session)
//! forwards raw frames to one pooled server (one-shard databases), the
//! [`Planned`](super::sharded::ShardedSession) executor plans each statement over shards.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgshard_config::PoolMode;
use pgshard_router::ProxySetting;

use super::cancel::CancelSlot;
use super::checkout::{Checkout, CheckoutFailure, NodePools};
use super::flow::{client_frame, greet_client, shutdown_notice, Flow};
use super::proxy_settings::{shard_setting, SessionRole};
use super::settings::ClientSettings;
use crate::context::{ProxyContext, UserEntry};
use crate::net::connection::Traffic;
use crate::net::layout::check_client_message;
use crate::net::messages::tag;
use crate::net::{ClientStream, Connection, Frame, StreamedHead, WireError};
use crate::registry::{ClientInfo, Registration};
use crate::routing::DatabaseRoute;
use crate::shutdown::SessionShutdown;

/// What every session has, whichever executor serves it.
pub struct SessionCore {
    pub ctx: Arc<ProxyContext>,
    pub client: Connection<ClientStream>,
    pub user: Arc<UserEntry>,
    pub db: Arc<DatabaseRoute>,
    pub mode: PoolMode,
    /// The client's session settings, replayed on each server connection it gets.
    pub settings: ClientSettings,
    /// This session's pool of each node, looked up once instead of per transaction.
    pub node_pools: NodePools,
    /// `SET pgshard.role`.
    pub role: SessionRole,
    /// `SET pgshard.shard`: run every statement on this shard (sharded databases).
    pub shard_override: Option<usize>,
    /// When the client's last write committed, for read-your-writes.
    pub written_at: Option<Instant>,
    pub cancel: CancelSlot,
    /// The session's entry in `SHOW CLIENTS`.
    pub info: Option<Registration<ClientInfo>>,
    /// When each request not yet answered with a ReadyForQuery arrived (a bounded few).
    requests: VecDeque<Instant>,
    /// Since when something runs for the client.
    busy_since: Option<Instant>,
    /// The client connection's traffic already counted in the database's figures.
    counted: Traffic,
}

/// Requests whose times are kept while they wait for their answers; beyond, a client
/// that pipelines without reading is counted but not timed.
const TIMED_REQUESTS: usize = 1024;

impl SessionCore {
    pub fn new(
        ctx: Arc<ProxyContext>,
        client: Connection<ClientStream>,
        user: Arc<UserEntry>,
        db: Arc<DatabaseRoute>,
        settings: ClientSettings,
        cancel: CancelSlot,
    ) -> SessionCore {
        SessionCore {
            ctx,
            client,
            mode: user.pool_mode,
            user,
            db,
            settings,
            node_pools: NodePools::default(),
            role: SessionRole::default(),
            shard_override: None,
            written_at: None,
            cancel,
            info: None,
            requests: VecDeque::new(),
            busy_since: None,
            counted: Traffic::default(),
        }
    }

    /// The checkout of this session's server connections, at the client's settings.
    pub fn checkout(&mut self) -> Checkout<'_> {
        Checkout {
            ctx: &self.ctx,
            user: &self.user,
            db: &self.db,
            settings: &self.settings,
            pools: &mut self.node_pools,
        }
    }
}

impl SessionCore {
    /// A request arrived (a Query, a Sync or a FunctionCall): it is timed to its
    /// ReadyForQuery, and starts the client's busy period if none runs.
    fn note_request(&mut self) {
        let now = Instant::now();
        if self.requests.len() < TIMED_REQUESTS {
            self.requests.push_back(now);
        }
        self.busy_since.get_or_insert(now);
    }

    /// Adds what the last step did to the database's figures (`SHOW STATS`); `active`
    /// tells whether something still runs for the client. The shared figures are touched
    /// only when a request was answered or a busy period ended, not at every step.
    fn account(&mut self, active: bool) {
        let traffic = self.client.traffic();
        let answered = traffic.ready_sent - self.counted.ready_sent;
        if answered == 0 && (active || self.busy_since.is_none()) {
            return;
        }
        let stats = &self.db.stats;
        let now = Instant::now();
        for _ in 0..answered {
            match self.requests.pop_front() {
                Some(start) => stats.queries.record(now - start),
                None => break,
            }
        }
        if !active {
            if let Some(since) = self.busy_since.take() {
                stats.transactions.record(now - since);
            }
        }
        self.count_bytes();
    }

    /// Adds the client's bytes not counted yet to the database's figures.
    fn count_bytes(&mut self) {
        let traffic = self.client.traffic();
        let stats = &self.db.stats;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        stats
            .received
            .fetch_add(traffic.received - self.counted.received, relaxed);
        stats
            .sent
            .fetch_add(traffic.sent - self.counted.sent, relaxed);
        self.counted = traffic;
    }

    /// The replies to `SET`/`RESET`/`SHOW pgshard.*`, answered by the proxy for either
    /// kind of database (one shard: `pgshard.shard` can only name shard 0), or the
    /// SQLSTATE and message of an error.
    pub fn answer_proxy_setting(
        &mut self,
        setting: ProxySetting,
        in_transaction: bool,
    ) -> Result<Vec<Frame>, (&'static str, String)> {
        let shards = self.db.shards.len();
        match shard_setting(&setting, &mut self.shard_override, shards) {
            Some(answer) => answer,
            None => Ok(self.role.apply(setting, in_transaction)),
        }
    }
}

/// What the session waits for next.
pub enum Event {
    /// A message from the client (or why none could be read).
    Client(Result<Frame, WireError>),
    /// The start of a large client message the executor takes as a stream.
    ClientStream(StreamedHead),
    /// A message from the server connection the executor is waiting on.
    Server(Result<Frame, WireError>),
    /// Another node became the primary while the executor holds the old one.
    PrimaryChanged,
}

/// What became of a streamed client message.
pub enum StreamOutcome {
    /// It was passed on (or refused) as it arrived.
    Passed(Flow),
    /// It was read whole after all (or why it could not be).
    Whole(Result<Frame, WireError>),
}

/// How a database kind runs a client's statements, under the engine.
pub(crate) trait Executor {
    fn core(&mut self) -> &mut SessionCore;

    /// Finds a server that answers, for the greeting: its ParameterStatus values.
    async fn open(&mut self) -> Result<HashMap<String, String>, CheckoutFailure>;

    /// The greeting went out: servers no longer needed go back to their pools.
    fn opened(&mut self);

    /// Nothing runs for the client now, so a shutdown may end the session at once.
    fn idle(&self) -> bool;

    /// The next thing that happens: a client message, or one of the executor's servers.
    async fn next_event(&mut self) -> Event;

    /// Whether the next event is a client message already read in whole, which the
    /// engine then takes in the same turn (a driver's batch arrives in one read).
    fn client_message_ready(&self) -> bool;

    /// The next client message, once it is known to be there.
    async fn read_client(&mut self) -> Event {
        Event::Client(self.core().client.read_frame().await)
    }

    /// A client message of a type a client may send (not Terminate).
    async fn on_client(&mut self, frame: Frame) -> Flow;

    /// The start of a large message that the executor's reads took as a stream: it
    /// passes the message on as the rest arrives, or reads it whole after all (within
    /// the message budget) for the engine to handle as any other message.
    async fn on_client_stream(&mut self, head: StreamedHead) -> StreamOutcome {
        StreamOutcome::Whole(self.core().client.read_whole(head).await)
    }

    async fn on_server(&mut self, frame: Result<Frame, WireError>) -> Flow;

    async fn on_primary_change(&mut self) -> Flow;

    /// Work the step left behind (a read to run again elsewhere).
    async fn after_step(&mut self) -> Flow;

    /// The client left: its servers are cleaned for the next client or closed.
    async fn finish(&mut self);

    /// The session is ended where it stands (at the shutdown deadline, perhaps in the
    /// middle of a step): every server it holds is closed, never reused.
    fn abandon(&mut self);
}

/// Serves one logged-in client with `executor` until it leaves, the proxy shuts down or a
/// connection fails.
pub(crate) async fn serve<X: Executor>(executor: &mut X, pid: i32, key: i32) {
    let params = match Box::pin(executor.open()).await {
        Ok(params) => params,
        Err(failure) => {
            let _ = executor.core().client.send(&failure.fatal()).await;
            return;
        }
    };
    if !Box::pin(greet_client(&mut executor.core().client, &params, pid, key)).await {
        return;
    }
    drop(params);
    executor.opened();
    let core = executor.core();
    core.counted = core.client.traffic();
    let core = executor.core();
    let shutdown = match &core.info {
        Some(info) => core
            .ctx
            .shutdown
            .for_killable_session(info.entry().kill.clone()),
        None => core.ctx.shutdown.for_session(),
    };
    loop {
        let flow = tokio::select! {
            biased;
            _ = shutdown.terminating() => {
                terminate(executor).await;
                return;
            }
            flow = step(executor, &shutdown) => flow,
        };
        if let Flow::Stop = flow {
            break;
        }
        let active = !executor.idle();
        let core = executor.core();
        if let Some(info) = &core.info {
            info.entry().active.set(active);
        }
        core.account(active);
    }
    executor.core().count_bytes();
    Box::pin(executor.finish()).await;
}

/// How long the last word to a client ended by the shutdown deadline may take.
const TERMINATE_NOTICE_TIMEOUT: Duration = Duration::from_secs(1);

/// One turn of a session: the next event, handled, and the work it left behind. An idle
/// session hears a shutdown at once.
async fn step<X: Executor>(executor: &mut X, shutdown: &SessionShutdown) -> Flow {
    let idle = executor.idle();
    let event = tokio::select! {
        event = executor.next_event() => Some(event),
        _ = shutdown.draining(), if idle => None,
    };
    let flow = match event {
        None => shutdown_notice(&mut executor.core().client).await,
        Some(Event::Server(frame)) => executor.on_server(frame).await,
        Some(Event::PrimaryChanged) => executor.on_primary_change().await,
        Some(mut event) => loop {
            let flow = match event {
                Event::Client(frame) => {
                    match client_frame(&mut executor.core().client, frame).await {
                        Ok(frame) => on_client_message(executor, frame).await,
                        Err(flow) => flow,
                    }
                }
                Event::ClientStream(head) => {
                    if head.tag() == tag::QUERY {
                        executor.core().note_request();
                    }
                    match executor.on_client_stream(head).await {
                        StreamOutcome::Passed(flow) => flow,
                        StreamOutcome::Whole(frame) => {
                            match client_frame(&mut executor.core().client, frame).await {
                                Ok(frame) => on_client_message(executor, frame).await,
                                Err(flow) => flow,
                            }
                        }
                    }
                }
                Event::Server(frame) => executor.on_server(frame).await,
                Event::PrimaryChanged => executor.on_primary_change().await,
            };
            if matches!(flow, Flow::Stop) || !executor.client_message_ready() {
                break flow;
            }
            // The messages a client sent together are handled together, each after the
            // work the one before it left behind.
            if let Flow::Stop = executor.after_step().await {
                return Flow::Stop;
            }
            event = executor.read_client().await;
        },
    };
    if let Flow::Stop = flow {
        return Flow::Stop;
    }
    executor.after_step().await
}

/// `shutdown_timeout` is over and the session still runs (a transaction open, a
/// statement under way): what it was doing is dropped, its servers are closed, never
/// reused, and the client is told why, as PostgreSQL tells it, rather than just cut off.
async fn terminate<X: Executor>(executor: &mut X) {
    executor.abandon();
    let client = &mut executor.core().client;
    let _ = tokio::time::timeout(TERMINATE_NOTICE_TIMEOUT, shutdown_notice(client)).await;
}

/// The checks every client message gets before its executor sees it: Terminate ends the
/// session, a message type no client sends ends it with 08P01, as in PostgreSQL, and so
/// does a message whose layout is broken (a string without its terminator, a field cut
/// short), worded as PostgreSQL words it; such a message is never forwarded.
async fn on_client_message<X: Executor>(executor: &mut X, frame: Frame) -> Flow {
    if let Err(broken) = check_client_message(&frame) {
        tracing::info!(
            "client sent a malformed '{}' message: {}",
            char::from(frame.tag()),
            broken.message()
        );
        return super::flow::fatal(&mut executor.core().client, "08P01", broken.message()).await;
    }
    if matches!(frame.tag(), tag::QUERY | tag::SYNC | tag::FUNCTION_CALL) {
        executor.core().note_request();
    }
    match frame.tag() {
        tag::TERMINATE => Flow::Stop,
        tag::QUERY
        | tag::PARSE
        | tag::BIND
        | tag::DESCRIBE
        | tag::EXECUTE
        | tag::CLOSE
        | tag::SYNC
        | tag::FLUSH
        | tag::FUNCTION_CALL
        | tag::COPY_DATA
        | tag::COPY_DONE
        | tag::COPY_FAIL => executor.on_client(frame).await,
        other => {
            super::flow::fatal(
                &mut executor.core().client,
                "08P01",
                &format!("invalid frontend message type {other}"),
            )
            .await
        }
    }
}
