//! Cursors on a sharded database: `DECLARE c CURSOR FOR query` declares a cursor of the
//! same name on every shard the query runs on (its statement rewritten for merging, as
//! for any query); `FETCH n FROM c` merges the shards' cursors into the next `n` rows,
//! fetching each shard's cursor a batch at a time; `MOVE` counts rows without sending
//! them; `CLOSE` closes the shards' cursors. Other statements may run between FETCHes.
//! Cursors end with their transaction, as in PostgreSQL; they fetch forward only.

use pgshard_router::plan::{ResultMerge, RowMerge, ShardPlan, ShardStatements};
use pgshard_router::{CursorCommand, FetchCount};

use super::execute::{Dispatch, Outcome, ShardResults, Statement};
use super::merge_rows::MergeTypes;
use super::replies::Lost;
use super::row_stream::{merge_error, quote_ident, Pumped, RowStream, ShardRows};
use super::{Flow, ShardedSession};
use crate::frontend::checkout::CheckoutFailure;
use crate::merge::{MergeError, RowDescription, RowOrder};
use crate::net::messages::{self, command_complete, tag};

/// Rows a shard's cursor is asked for first (then as [`super::row_stream`] fetches).
const FIRST_BATCH: usize = 200;

/// A cursor the client declared.
pub(super) struct Cursor {
    /// The shards that hold a cursor of the same name.
    shards: Vec<usize>,
    merge: RowMerge,
    /// The merged rows, once the first FETCH opened them.
    stream: Option<RowStream>,
}

impl ShardedSession {
    pub(super) async fn cursor_statement(
        &mut self,
        command: CursorCommand,
        stmt: Statement<'_>,
    ) -> Outcome {
        match command {
            CursorCommand::Declare {
                name,
                query,
                hold,
                binary,
            } => self.declare(name, &query, hold || binary, stmt).await,
            CursorCommand::Fetch {
                name,
                count,
                moving,
            } => self.fetch(&name, count, moving, stmt).await,
            CursorCommand::Close { name } => self.close_cursors(name).await,
            CursorCommand::Unsupported(why) => {
                self.statement_error("0A000", &format!("pgshard: {why}"))
                    .await
            }
        }
    }

    async fn declare(
        &mut self,
        name: String,
        query: &str,
        unsupported: bool,
        stmt: Statement<'_>,
    ) -> Outcome {
        if !self.txn.is_open() {
            return self
                .statement_error(
                    "25P01",
                    "DECLARE CURSOR can only be used in transaction blocks",
                )
                .await;
        }
        if unsupported {
            return self
                .statement_error(
                    "0A000",
                    "pgshard: WITH HOLD and BINARY cursors are not supported on a sharded \
                     database; declare the cursor without them",
                )
                .await;
        }
        if self.cursors.contains_key(&name) {
            let message = format!("cursor \"{name}\" already exists");
            return self.statement_error("42P03", &message).await;
        }
        let plan = match self.plan_of(query, stmt.portal) {
            Ok(plan) => plan,
            Err(e) => {
                let (code, message) = Self::plan_error(&e);
                return self.statement_error(code, &message).await;
            }
        };
        let (merge, shard_sql) = match (&plan.merge, &plan.statements) {
            (ResultMerge::Rows(merge), ShardStatements::Rewritten(sql)) => {
                (merge.clone(), sql.clone())
            }
            (ResultMerge::Rows(merge), ShardStatements::Original) => {
                (merge.clone(), query.to_string())
            }
            (ResultMerge::PassThrough, ShardStatements::Original) => {
                (RowMerge::default(), query.to_string())
            }
            _ => {
                return self
                    .statement_error(
                        "0A000",
                        "pgshard: a cursor on a sharded database must be declared for a query",
                    )
                    .await
            }
        };
        let declare = ShardPlan {
            target: plan.target.clone(),
            statements: ShardStatements::Rewritten(format!(
                "DECLARE {} NO SCROLL CURSOR FOR {shard_sql}",
                quote_ident(&name)
            )),
            merge: ResultMerge::Same,
        };
        let dispatch = self.dispatch_for(&declare, &stmt);
        let shards = dispatch.shards.clone();
        let outcome = self.run_plan(&declare, dispatch, &stmt, false).await;
        if let Outcome::Done = outcome {
            self.cursors.insert(
                name,
                Cursor {
                    shards,
                    merge,
                    stream: None,
                },
            );
        }
        outcome
    }

    async fn fetch(
        &mut self,
        name: &str,
        count: FetchCount,
        moving: bool,
        stmt: Statement<'_>,
    ) -> Outcome {
        let Some(mut cursor) = self.cursors.remove(name) else {
            let message = format!("cursor \"{name}\" does not exist");
            return self.statement_error("34000", &message).await;
        };
        let budget = match count {
            FetchCount::Rows(n) => Some(n),
            FetchCount::All => None,
        };
        let result = self
            .fetch_rows(name, &mut cursor, budget, moving, &stmt)
            .await;
        self.cursors.insert(name.to_string(), cursor);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(lost) => return self.lost(lost).await,
        };
        if let Outcome::Failed = outcome {
            self.txn.fail();
        }
        outcome
    }

    /// Describe of a cursor, as of a portal: its rows' description (the cursor is opened
    /// on the shards for it, as its first FETCH would).
    pub(super) async fn describe_cursor(&mut self, name: &str) -> Flow {
        let Some(mut cursor) = self.cursors.remove(name) else {
            return Flow::Continue;
        };
        let stmt = Statement {
            sql: "",
            portal: None,
            describe: true,
        };
        let result = match cursor.stream.as_ref() {
            Some(stream) => Ok(Ok(stream.description.clone())),
            None => self.open_cursor(name, &cursor, &stmt).await.map(|opened| {
                opened.map(|stream| {
                    let description = stream.description.clone();
                    cursor.stream = Some(stream);
                    description
                })
            }),
        };
        self.cursors.insert(name.to_string(), cursor);
        match result {
            Ok(Ok(description)) => self.reply_frame(&description).await,
            Ok(Err(error)) => {
                self.txn.fail();
                self.discard_until_sync = true;
                self.reply_frame(&error).await
            }
            Err(lost) => match self.lost(lost).await {
                Outcome::Stop => Flow::Stop,
                _ => Flow::Continue,
            },
        }
    }

    async fn reply_frame(&mut self, frame: &crate::net::Frame) -> Flow {
        match self.core.client.write_frame(frame).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    async fn fetch_rows(
        &mut self,
        name: &str,
        cursor: &mut Cursor,
        budget: Option<u64>,
        moving: bool,
        stmt: &Statement<'_>,
    ) -> Result<Outcome, Lost> {
        if cursor.stream.is_none() {
            match self.open_cursor(name, cursor, stmt).await? {
                Ok(stream) => cursor.stream = Some(stream),
                Err(error) => {
                    self.send_client(&error).await?;
                    return Ok(Outcome::Failed);
                }
            }
        }
        let Some(stream) = cursor.stream.as_mut() else {
            return Ok(Outcome::Failed);
        };
        if stmt.describe && !moving {
            let description = stream.description.clone();
            self.send_client(&description).await?;
        }
        let (sent, error) = match self.pump(stream, budget, !moving).await? {
            Pumped::Suspended(sent) => (sent, None),
            Pumped::Finished(sent, error) => (sent, error),
        };
        if let Some(error) = error {
            self.send_client(&error).await?;
            return Ok(Outcome::Failed);
        }
        let verb = if moving { "MOVE" } else { "FETCH" };
        self.send_client(&command_complete(&format!("{verb} {sent}")))
            .await?;
        Ok(Outcome::Done)
    }

    /// The first FETCH: each shard's cursor is fetched once for its RowDescription and
    /// first rows, and the merge is set up from them.
    async fn open_cursor(
        &mut self,
        name: &str,
        cursor: &Cursor,
        stmt: &Statement<'_>,
    ) -> Result<Result<RowStream, crate::net::Frame>, Lost> {
        let need = self.need(false);
        for &shard in &cursor.shards {
            if let Err(failure) = self.ensure_link(shard, need, false).await {
                return Ok(Err(match failure {
                    CheckoutFailure::Refused(error) => error,
                    CheckoutFailure::Unavailable(message) => {
                        messages::error_response(crate::net::Severity::Error, "08006", &message)
                    }
                }));
            }
        }
        let fetch = format!("FETCH FORWARD {FIRST_BATCH} FROM {}", quote_ident(name));
        for &shard in &cursor.shards {
            self.send_to(shard, &[messages::query(&fetch)]).await?;
        }
        let (description, streaming, error) = self
            .first_replies(&cursor.shards, tag::ROW_DESCRIPTION)
            .await?;
        if let Some(error) = error {
            for shard in streaming {
                self.drain(shard).await?;
            }
            return Ok(Err(error));
        }
        let Some(description) = description else {
            return Ok(Err(merge_error(MergeError::Mismatch)));
        };
        // The shards send text; a FETCH bound for binary results gets them converted.
        let wants_binary = stmt.portal.is_some_and(|p| p.result_formats.contains(&1));
        let dispatch = Dispatch {
            shards: streaming.clone(),
            frames: Vec::new(),
            results: if wants_binary {
                ShardResults::Text
            } else {
                ShardResults::AsClient
            },
        };
        let prepared = RowDescription::parse(&description)
            .map_err(|_| MergeError::Mismatch)
            .and_then(|desc| self.prepare_output(desc, &cursor.merge, &dispatch, stmt));
        let (desc_frame, mut types, output) = match prepared {
            Ok(p) => p,
            Err(e) => {
                for &shard in &streaming {
                    self.drain(shard).await?;
                }
                return Ok(Err(merge_error(e)));
            }
        };
        let mut sources = Vec::with_capacity(streaming.len());
        for &shard in &streaming {
            let mut fetched = std::collections::VecDeque::new();
            loop {
                match self.next_row(shard).await? {
                    Ok(Some(row)) => fetched.push_back(row),
                    Ok(None) => break,
                    Err(error) => {
                        return Ok(Err(error));
                    }
                }
            }
            sources.push(ShardRows::Cursor {
                name: name.to_string(),
                exhausted: fetched.len() < FIRST_BATCH,
                fetched,
            });
        }
        let mut stream = RowStream::new(streaming, sources, &cursor.merge, output, desc_frame);
        match self
            .start_merge(&mut stream, &cursor.merge, &mut types)
            .await?
        {
            Ok(()) => Ok(Ok(stream)),
            Err(error) => Ok(Err(error)),
        }
    }

    /// Sets up how a stream's rows are merged: ordered, or grouped in memory.
    pub(super) async fn start_merge(
        &mut self,
        stream: &mut RowStream,
        merge: &RowMerge,
        types: &mut MergeTypes,
    ) -> Result<Result<(), crate::net::Frame>, Lost> {
        if let Some(grouping) = &merge.group {
            return self.start_grouped(stream, merge, grouping, types).await;
        }
        if !merge.order_by.is_empty() {
            match RowOrder::new(&merge.order_by, &types.merged, stream.output.visible) {
                Ok(order) => stream.order = Some(order),
                Err(e) => {
                    self.close_sources(stream).await?;
                    return Ok(Err(merge_error(e)));
                }
            }
        }
        Ok(Ok(()))
    }

    async fn close_cursors(&mut self, name: Option<String>) -> Outcome {
        let closing: Vec<(String, Cursor)> = match name {
            None => self.cursors.drain().collect(),
            Some(name) => match self.cursors.remove(&name) {
                Some(cursor) => vec![(name, cursor)],
                None => {
                    let message = format!("cursor \"{name}\" does not exist");
                    return self.statement_error("34000", &message).await;
                }
            },
        };
        for (name, cursor) in closing {
            let close = messages::query(&format!("CLOSE {}", quote_ident(&name)));
            for shard in cursor.shards {
                if self.links.get(shard).is_some_and(Option::is_some) {
                    let result = match self.send_to(shard, std::slice::from_ref(&close)).await {
                        Ok(()) => self.drain(shard).await,
                        Err(lost) => Err(lost),
                    };
                    match result {
                        Ok(None) => {}
                        Ok(Some(error)) => {
                            self.txn.fail();
                            return match self.send_client(&error).await {
                                Ok(()) => Outcome::Failed,
                                Err(lost) => self.lost(lost).await,
                            };
                        }
                        Err(lost) => return self.lost(lost).await,
                    }
                }
            }
        }
        self.complete("CLOSE CURSOR").await
    }
}
