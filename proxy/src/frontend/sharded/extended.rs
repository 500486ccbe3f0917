//! The extended query protocol on a sharded database. The proxy keeps the client's
//! statements and portals and answers Parse, Bind and Close itself; a portal is planned
//! when it is executed, with its parameters, and each shard is sent its own unnamed
//! Parse, Bind, Execute and Sync. Several Executes before one Sync form one implicit
//! transaction, as in PostgreSQL.

use super::bind::{describe_frame, parse_frame, read_bind, read_parse, sync_frame, Portal};
use super::execute::{Outcome, Statement};
use super::row_limit::{portal_suspended, RowLimit};
use super::row_stream::{Pumped, RowStream};
use super::transaction::ImplicitBlock;
use super::{Flow, ShardedSession};
use crate::frontend::statements::statement_memory_refusal;
use crate::net::messages::{command_complete, tag};
use crate::net::{Frame, WireError};

impl ShardedSession {
    pub(super) async fn on_parse(&mut self, frame: &Frame) -> Flow {
        let (name, prepared) = match read_parse(frame) {
            Ok(p) => p,
            Err(WireError::NotUtf8) => {
                return self.error_reply("22021", super::NOT_UTF8, false).await
            }
            Err(_) => return self.fatal("08P01", "invalid Parse message").await,
        };
        if !name.is_empty() && self.statements.contains_key(&name) {
            let message = format!("prepared statement \"{name}\" already exists");
            return self.error_reply("42P05", &message, false).await;
        }
        if pgshard_router::command_count(&prepared.sql) > 1 {
            // As PostgreSQL refuses it, whichever shard would run it.
            return self
                .error_reply(
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                    false,
                )
                .await;
        }
        if pgshard_router::mentions_proxy_settings(&prepared.sql)
            && pgshard_router::proxy_setting(&prepared.sql).is_some()
        {
            // A server would take `SET pgshard.shard` as a custom setting and do nothing.
            return self
                .error_reply(
                    "0A000",
                    "pgshard: SET/SHOW pgshard.* works only as a simple query; send it with \
                     the simple query protocol, or use a /* pgshard: … */ comment",
                    false,
                )
                .await;
        }
        // Refusals (unsupported statements, unknown tables) are reported at Parse, as
        // PostgreSQL reports what it cannot prepare.
        let input = pgshard_router::plan::PlanInput {
            params: None,
            shard_override: self.core.shard_override,
        };
        let checked = match pgshard_router::cursor_command(&prepared.sql) {
            Some(pgshard_router::CursorCommand::Declare { query, .. }) => query,
            Some(_) => String::new(),
            None => prepared.sql.to_string(),
        };
        match self.planner.plan(&checked, &input) {
            // The columns are read when the statement runs.
            Ok(_) | Err(pgshard_router::plan::PlanError::ColumnsNeeded { .. }) => {}
            Err(e) => {
                let (code, message) = Self::plan_error(&e);
                return self.error_reply(code, &message, false).await;
            }
        }
        let limit = self.core.ctx.config.proxy.max_prepared_statement_memory;
        if !self.statements.has_room(&name, &prepared, limit) {
            let (code, message) = statement_memory_refusal(self.statements.kept(), limit);
            return self.error_reply(code, &message, false).await;
        }
        self.statements.insert(name, prepared);
        self.buffer(&Frame::new(tag::PARSE_COMPLETE, &[])).await
    }

    pub(super) async fn on_bind(&mut self, frame: &Frame) -> Flow {
        let bind = match read_bind(frame) {
            Ok(b) => b,
            Err(_) => return self.fatal("08P01", "invalid Bind message").await,
        };
        let (portal, statement) = (bind.portal, bind.statement);
        let Some(prepared) = self.statements.get(&statement).cloned() else {
            let message = format!("prepared statement \"{statement}\" does not exist");
            return self.error_reply("26000", &message, false).await;
        };
        if !portal.is_empty() && self.portals.contains_key(&portal) {
            let message = format!("portal \"{portal}\" already exists");
            return self.error_reply("42P03", &message, false).await;
        }
        self.described.remove(&portal);
        self.suspended.remove(&portal);
        self.fetched_to_end.remove(&portal);
        self.portals.insert(
            portal,
            Portal {
                statement: prepared,
                formats: bind.formats,
                values: bind.values,
                result_formats: bind.result_formats,
            },
        );
        self.buffer(&Frame::new(tag::BIND_COMPLETE, &[])).await
    }

    pub(super) async fn on_describe(&mut self, frame: &Frame) -> Flow {
        let mut reader = frame.reader();
        let (Ok(kind), Ok(name)) = (reader.u8(), reader.cstr_utf8()) else {
            return self.fatal("08P01", "invalid Describe message").await;
        };
        let name = name.to_string();
        match kind {
            b'S' => self.describe_statement(&name).await,
            b'P' => {
                if !self.portals.contains_key(&name) && self.cursors.contains_key(&name) {
                    // A cursor is a portal too: psycopg describes its server-side cursors.
                    return self.describe_cursor(&name).await;
                }
                if !self.portals.contains_key(&name) {
                    let message = format!("portal \"{name}\" does not exist");
                    return self.error_reply("34000", &message, false).await;
                }
                // Answered with the Execute that normally follows.
                self.described.insert(name);
                Flow::Continue
            }
            _ => self.fatal("08P01", "invalid Describe message").await,
        }
    }

    /// ParameterDescription and RowDescription of a prepared statement, from any shard:
    /// every shard has the same tables.
    async fn describe_statement(&mut self, name: &str) -> Flow {
        let Some(prepared) = self.statements.get(name).cloned() else {
            let message = format!("prepared statement \"{name}\" does not exist");
            return self.error_reply("26000", &message, false).await;
        };
        let frames = vec![
            parse_frame(&prepared.sql, &prepared.types),
            describe_frame(b'S'),
            sync_frame(),
        ];
        self.describe_on_a_shard(frames).await
    }

    /// Runs a describe-only batch on some shard and relays its descriptions.
    async fn describe_on_a_shard(&mut self, frames: Vec<Frame>) -> Flow {
        if let Err(lost) = self.hold_portal_streams().await {
            self.lost(lost).await;
            return Flow::Stop;
        }
        let shard = self
            .core
            .shard_override
            .unwrap_or(0)
            .min(self.links.len().saturating_sub(1));
        let write = false;
        let need = self.need(write);
        if let Err(failure) = self.ensure_link(shard, need, false).await {
            return match self.checkout_failed(failure).await {
                super::execute::Outcome::Stop => Flow::Stop,
                _ => {
                    self.discard_until_sync = true;
                    self.core
                        .client
                        .flush()
                        .await
                        .map_or(Flow::Stop, |()| Flow::Continue)
                }
            };
        }
        if let Err(lost) = self.send_to(shard, &frames).await {
            self.lost(lost).await;
            return Flow::Stop;
        }
        let mut failed = false;
        loop {
            let frame = match self.reply(shard).await {
                Ok(f) => f,
                Err(lost) => {
                    self.lost(lost).await;
                    return Flow::Stop;
                }
            };
            match frame.tag() {
                tag::READY_FOR_QUERY => break,
                tag::ERROR_RESPONSE => failed = true,
                _ => {}
            }
            if self.core.client.write_frame(&frame).await.is_err() {
                return Flow::Stop;
            }
        }
        self.release_links();
        if failed {
            self.discard_until_sync = true;
        }
        Flow::Continue
    }

    pub(super) async fn on_execute(&mut self, frame: &Frame) -> Flow {
        let mut reader = frame.reader();
        let (Ok(name), Ok(max_rows)) = (reader.cstr_utf8(), reader.i32()) else {
            return self.fatal("08P01", "invalid Execute message").await;
        };
        let name = name.to_string();
        let Some(portal) = self.portals.get(&name).cloned() else {
            let message = format!("portal \"{name}\" does not exist");
            return self.error_reply("34000", &message, false).await;
        };
        if let Some(stream) = self.portal_streams.remove(&name) {
            return self.resume(name, stream, max_rows).await;
        }
        if self.fetched_to_end.contains(&name) {
            return self.buffer(&command_complete("SELECT 0")).await;
        }
        if self.suspended.contains(&name) {
            return self
                .error_reply(
                    "0A000",
                    "pgshard: resuming a portal fetched in parts (a second Execute with a row \
                     limit) is supported on a sharded database for queries only; fetch all \
                     rows at once (no fetch size)",
                    false,
                )
                .await;
        }
        if max_rows > 0 {
            self.row_limit = Some(RowLimit::new(max_rows as u32));
        }
        if self.block == ImplicitBlock::Off {
            // Another statement before Sync makes the batch one implicit transaction;
            // the results are owed only at Sync or Flush, so the next message can be
            // awaited first.
            let next = self.core.client.read_frame().await;
            if !matches!(&next, Ok(f) if f.tag() == tag::SYNC) {
                self.block = ImplicitBlock::Pending;
            }
            self.read_ahead = Some(next);
        }
        let describe = self.described.remove(&name);
        let sql = portal.statement.sql.clone();
        let stmt = Statement {
            sql: &sql,
            portal: Some(&portal),
            describe,
        };
        let outcome = self.run_statement(stmt).await;
        if let Some(stream) = self.suspending.take() {
            self.portal_streams.insert(name, stream);
        } else if self.row_limit.take().is_some_and(|limit| limit.reached()) {
            self.suspended.insert(name);
        }
        match outcome {
            Outcome::Done => Flow::Continue,
            Outcome::Failed => {
                self.discard_until_sync = true;
                Flow::Continue
            }
            Outcome::Stop => Flow::Stop,
        }
    }

    /// The next rows of a suspended portal's merged result.
    async fn resume(&mut self, name: String, mut stream: RowStream, max_rows: i32) -> Flow {
        if self.txn.failed() {
            return self
                .error_reply(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                    false,
                )
                .await;
        }
        let budget = u64::try_from(max_rows).ok().filter(|&n| n > 0);
        let pumped = match self.pump(&mut stream, budget, true).await {
            Ok(pumped) => pumped,
            Err(lost) => {
                return match self.lost(lost).await {
                    Outcome::Stop => Flow::Stop,
                    _ => Flow::Continue,
                }
            }
        };
        let reply = match pumped {
            Pumped::Suspended(_) => {
                self.portal_streams.insert(name, stream);
                portal_suspended()
            }
            Pumped::Finished(sent, None) => {
                self.release_links();
                self.fetched_to_end.insert(name);
                command_complete(&format!("SELECT {sent}"))
            }
            Pumped::Finished(_, Some(error)) => {
                self.txn.fail();
                self.discard_until_sync = true;
                self.release_links();
                error
            }
        };
        self.buffer(&reply).await
    }

    pub(super) async fn on_close(&mut self, frame: &Frame) -> Flow {
        let mut reader = frame.reader();
        let (Ok(kind), Ok(name)) = (reader.u8(), reader.cstr_utf8()) else {
            return self.fatal("08P01", "invalid Close message").await;
        };
        match kind {
            b'S' => {
                self.statements.remove(name);
            }
            b'P' => {
                self.portals.remove(name);
                self.described.remove(name);
                self.suspended.remove(name);
                self.fetched_to_end.remove(name);
                if let Some(mut stream) = self.portal_streams.remove(name) {
                    if let Err(lost) = self.close_sources(&mut stream).await {
                        self.lost(lost).await;
                        return Flow::Stop;
                    }
                    self.release_links();
                }
            }
            _ => return self.fatal("08P01", "invalid Close message").await,
        }
        self.buffer(&Frame::new(tag::CLOSE_COMPLETE, &[])).await
    }

    pub(super) async fn on_sync(&mut self) -> Flow {
        self.discard_until_sync = false;
        // A Sync outside a transaction ends its portals, suspended ones too.
        if !self.txn.is_open() || self.block == ImplicitBlock::Open {
            if let Err(lost) = self.close_portal_streams().await {
                self.lost(lost).await;
                return Flow::Stop;
            }
        }
        // A portal described but not executed: its description is still owed.
        let pending: Vec<String> = self.described.drain().collect();
        for name in pending {
            if let Some(portal) = self.portals.get(&name).cloned() {
                if let Flow::Stop = self.describe_portal(&portal).await {
                    return Flow::Stop;
                }
            }
        }
        if let Outcome::Stop = self.end_block().await {
            return Flow::Stop;
        }
        // Portals, the unnamed one too, end with the transaction, which a Sync outside
        // one ends; the unnamed statement lasts until the next Parse.
        if !self.txn.is_open() {
            self.portals.clear();
            // PostgreSQL drops every portal with the transaction, suspended ones too.
            self.suspended.clear();
            self.fetched_to_end.clear();
        }
        self.reply_local(&[crate::net::messages::ready_for_query(self.txn.status())])
            .await
    }

    async fn describe_portal(&mut self, portal: &Portal) -> Flow {
        let frames = vec![
            parse_frame(&portal.statement.sql, &portal.statement.types),
            super::bind::bind_frame(&portal.formats, &portal.values, &portal.result_formats),
            describe_frame(b'P'),
            sync_frame(),
        ];
        self.describe_on_a_shard(frames).await
    }

    /// Queues a reply without flushing: the client reads it with the batch's others.
    async fn buffer(&mut self, frame: &Frame) -> Flow {
        match self.core.client.write_frame(frame).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }
}
