//! Running one statement: the proxy's own settings and transaction control, then the
//! router's plan — servers checked out on the shards it names, each sent its statement,
//! and the replies merged as the plan says.

use bytes::Bytes;
use pgshard_router::plan::{
    columns_query, name_columns, BoundParams, ColumnRef, PlanError, PlanInput, ResultMerge,
    RowMerge, ShardPlan, ShardStatements, ShardTarget,
};
use pgshard_router::{
    deallocated_statement, proxy_setting, savepoint_command, session_effect, Route, SessionEffect,
    TxnControl,
};

use super::bind::{bind_frame, describe_frame, execute_frame, parse_frame, sync_frame, Portal};
use super::link::{checkout, Need};
use super::replies::Lost;
use super::row_limit::{portal_suspended, Passage};
use super::transaction::{ImplicitBlock, TxnState};
use super::{Flow, ShardedSession};
use crate::frontend::cancel::{CancelTarget, CANCELED_MESSAGE};
use crate::frontend::checkout::CheckoutFailure;
use crate::frontend::settings::effective_value;
use crate::net::messages::{self, command_complete, error_response, tag};
use crate::net::{Frame, Severity};
use crate::routing::ReadNeeds;

/// How a statement ended, for the message loop.
pub(super) enum Outcome {
    Done,
    /// The client got an error: the rest of a simple query is skipped, an extended batch
    /// discarded up to Sync.
    Failed,
    Stop,
}

/// One statement to run.
pub(super) struct Statement<'a> {
    pub sql: &'a str,
    /// The bound portal (extended protocol); `None` for a simple query.
    pub portal: Option<&'a Portal>,
    /// The client gets the RowDescription: always for a simple query, after Describe
    /// for a portal.
    pub describe: bool,
}

/// What each targeted shard is sent, in order.
pub(super) struct Dispatch {
    pub shards: Vec<usize>,
    pub frames: Vec<Vec<Frame>>,
    /// The result formats the shards are asked for.
    pub results: ShardResults,
}

/// The result formats a fan-out asks the shards for: the client's, except where the merge
/// reads values, which it reads as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ShardResults {
    /// As the client asked: the merge reads no value.
    AsClient,
    /// Text for every column (the column count is unknown); what the client wants in
    /// binary the proxy converts.
    Text,
    /// One code per shard column (the client's, then the hidden ones): text where the
    /// merge reads values, the client's choice elsewhere, passed through unchanged.
    PerColumn(Vec<i16>),
}

impl ShardResults {
    /// What to ask the shards for, for a merge of rows of `portal`.
    fn for_merge(merge: &RowMerge, portal: Option<&Portal>) -> ShardResults {
        let Some(portal) = portal else {
            return ShardResults::AsClient;
        };
        let reads_values =
            merge.group.is_some() || !merge.order_by.is_empty() || merge.having.is_some();
        if !reads_values || portal.result_formats.iter().all(|&f| f == 0) {
            return ShardResults::AsClient;
        }
        let Some(visible) = merge.visible_columns else {
            return ShardResults::Text;
        };
        let mut formats: Vec<i16> = (0..visible)
            .map(|i| {
                if merge.reads(ColumnRef::Visible(i)) {
                    0
                } else {
                    portal.result_format(i)
                }
            })
            .collect();
        formats.resize(visible + merge.hidden_columns, 0);
        ShardResults::PerColumn(formats)
    }

    /// The format the shards send column `i` in.
    pub fn format(&self, portal: Option<&Portal>, i: usize) -> i16 {
        match self {
            ShardResults::AsClient => portal.map_or(0, |p| p.result_format(i)),
            ShardResults::Text => 0,
            ShardResults::PerColumn(formats) => formats.get(i).copied().unwrap_or(0),
        }
    }
}

impl ShardedSession {
    pub(super) async fn run_statement(&mut self, stmt: Statement<'_>) -> Outcome {
        let simple = stmt.portal.is_none();
        if simple {
            if let Some(setting) = proxy_setting(stmt.sql) {
                return self.proxy_setting(setting).await;
            }
        }
        if let Err(lost) = self.hold_portal_streams().await {
            return self.lost(lost).await;
        }
        let classification = self.core.db.classifier.classify(stmt.sql);
        if let Some(e) = &classification.hint_error {
            return self.statement_error(e.sqlstate(), &e.to_string()).await;
        }
        match classification.txn {
            TxnControl::Begin { read_only } => return self.begin(stmt.sql, read_only).await,
            TxnControl::Commit | TxnControl::Rollback => {
                // COMMIT AND CHAIN / ROLLBACK AND CHAIN start the next transaction at
                // once, with the same modes.
                let chained = match &self.txn {
                    TxnState::Open {
                        begin, read_only, ..
                    } if pgshard_router::and_chain(stmt.sql) => Some((begin.clone(), *read_only)),
                    _ => None,
                };
                let outcome = self
                    .end_transaction(classification.txn == TxnControl::Commit)
                    .await;
                if let (Some((begin, read_only)), Outcome::Done) = (chained, &outcome) {
                    self.txn = TxnState::open(&begin, read_only);
                }
                return outcome;
            }
            TxnControl::None => {}
        }
        if let Some(command) = savepoint_command(stmt.sql) {
            return self.savepoint(command, stmt.sql).await;
        }
        if self.txn.failed() {
            return self
                .statement_error(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                )
                .await;
        }
        if let Some(name) = deallocated_statement(stmt.sql) {
            // The client's statements live in the proxy, never on a shard.
            if self.statements.remove(&name).is_none() {
                let message = format!("prepared statement \"{name}\" does not exist");
                return self.statement_error("26000", &message).await;
            }
            return match self
                .core
                .client
                .write_frame(&command_complete("DEALLOCATE"))
                .await
            {
                Ok(()) => Outcome::Done,
                Err(_) => Outcome::Stop,
            };
        }
        if let Some(command) = pgshard_router::cursor_command(stmt.sql) {
            return self.cursor_statement(command, stmt).await;
        }
        let effect = session_effect(stmt.sql);
        if effect.changes_role() {
            // The role would have to reach every shard the session uses later, which a
            // settings replay cannot carry, in either pool mode.
            return self
                .statement_error(
                    "0A000",
                    "pgshard: changing the role (SET ROLE, SET SESSION AUTHORIZATION) is not \
                     supported on a sharded database; log in as that role instead (a \
                     [[users]] entry with its server_user)",
                )
                .await;
        }
        if let SessionEffect::Pin(why) = effect {
            if self.core.mode == pgshard_config::PoolMode::Transaction {
                return self
                    .statement_error(
                        "0A000",
                        &format!(
                            "pgshard: {why} keeps state on one server connection, which a \
                             sharded database in transaction pooling cannot do; use \
                             pool_mode = \"session\" for this user"
                        ),
                    )
                    .await;
            }
        }
        self.replica_hint = classification.hint == Some(pgshard_router::RoleHint::Replica);
        let write = classification.route == Route::Write
            || classification.hint == Some(pgshard_router::RoleHint::Primary)
            || self.core.role.current() == Some(pgshard_router::RoleHint::Primary);
        let mut plan = self.plan_of(stmt.sql, stmt.portal);
        let mut named = None;
        if let Err(PlanError::ColumnsNeeded { table }) = &plan {
            let table = table.clone();
            match self.with_columns_named(stmt.sql, &table).await {
                Ok(sql) => {
                    plan = self.plan_of(&sql, stmt.portal);
                    named = Some(sql);
                }
                Err(outcome) => return outcome,
            }
        }
        let stmt = Statement {
            sql: named.as_deref().unwrap_or(stmt.sql),
            ..stmt
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                // A server checked out to read the columns goes back.
                self.release_links();
                let (code, message) = Self::plan_error(&e);
                return self.statement_error(code, &message).await;
            }
        };
        if self.block == ImplicitBlock::Pending
            && !self.txn.is_open()
            && (write || effect != SessionEffect::None)
        {
            // The block's first write (or setting) opens its transaction.
            self.txn = TxnState::open("BEGIN", false);
            self.block = ImplicitBlock::Open;
        }
        let dispatch = self.dispatch_for(&plan, &stmt);
        self.copy_needs_sync = stmt.portal.is_some();
        let changes_settings = matches!(
            effect,
            SessionEffect::Set { .. }
                | SessionEffect::SetRaw { .. }
                | SessionEffect::Reset { .. }
                | SessionEffect::ResetAll
                | SessionEffect::DiscardAll
        );
        self.changing_settings = changes_settings;
        let outcome = self.run_plan(&plan, dispatch, &stmt, write).await;
        self.changing_settings = false;
        if matches!(outcome, Outcome::Done) && changes_settings {
            let effect = effective_value(effect, &self.reported);
            if effect == SessionEffect::DiscardAll {
                // DISCARD ALL and DEALLOCATE ALL drop the client's statements, which the
                // proxy keeps.
                self.statements.clear();
            }
            if self.txn.is_open() {
                self.staged.push(effect);
            } else {
                self.core.settings.apply(&effect);
                self.replay_on_held_links().await;
            }
        }
        outcome
    }

    /// `sql`, an INSERT or COPY into a sharded table without a column list, with the
    /// table's columns named, as a shard's catalog lists them now.
    async fn with_columns_named(&mut self, sql: &str, table: &str) -> Result<String, Outcome> {
        let shard = match self.links.iter().position(Option::is_some) {
            Some(held) => held,
            None => self.any_shard(),
        };
        let need = self.need(true);
        if let Err(failure) = self.ensure_link(shard, need, false).await {
            return Err(self.checkout_failed(failure).await);
        }
        let listed = match self.links[shard].as_mut() {
            Some(link) => link.server.query_value(&columns_query(table)).await,
            None => return Err(Outcome::Stop),
        };
        let columns = match listed {
            Ok(Some(columns)) => columns,
            Ok(None) => {
                self.release_links();
                let message = format!("relation \"{table}\" does not exist");
                return Err(self.statement_error("42P01", &message).await);
            }
            Err(e) => {
                let reason = format!("reading the columns of {table}: {e}");
                return Err(self.lost(Lost { shard, reason }).await);
            }
        };
        match name_columns(sql, &columns) {
            Ok(named) => Ok(named),
            Err(e) => {
                self.release_links();
                let (code, message) = Self::plan_error(&e);
                Err(self.statement_error(code, &message).await)
            }
        }
    }

    /// After a settings statement, the servers still held (session pooling) are brought
    /// to the client's settings: the statement ran on one shard, and a RESET there went
    /// back to the proxy's defaults rather than the client's startup values.
    async fn replay_on_held_links(&mut self) {
        let fingerprint = self.core.settings.fingerprint();
        let sql = self.core.settings.replay_sql();
        for link in self.links.iter_mut().flatten() {
            link.server.applied_settings = match link.server.run_quietly(&sql).await {
                Ok(None) => Some(fingerprint),
                // Replayed again at the next checkout; a failed connection is dropped.
                Ok(Some(_)) | Err(_) => None,
            };
        }
    }

    /// The statement gets no server: the reason, or the server's own error.
    pub(super) async fn checkout_failed(&mut self, failure: CheckoutFailure) -> Outcome {
        if let CheckoutFailure::Unavailable(message) = &failure {
            tracing::warn!("{message}");
        }
        self.txn.fail();
        if self
            .core
            .client
            .write_frame(&failure.error())
            .await
            .is_err()
        {
            return Outcome::Stop;
        }
        Outcome::Failed
    }

    /// The router's plan for `sql`, with the portal's parameters.
    pub(super) fn plan_of(
        &self,
        sql: &str,
        portal: Option<&Portal>,
    ) -> Result<ShardPlan, PlanError> {
        let formats = portal.map(Portal::param_formats);
        let values: Option<Vec<Option<&[u8]>>> =
            portal.map(|p| p.values.iter().map(|v| v.as_deref()).collect());
        let input = PlanInput {
            params: match (&values, &formats) {
                (Some(values), Some(formats)) => Some(BoundParams { values, formats }),
                _ => None,
            },
            shard_override: self.core.shard_override,
        };
        self.planner.plan(sql, &input)
    }

    /// Reads the rest of every suspended portal into memory: another statement is about
    /// to use the shards' connections.
    pub(super) async fn hold_portal_streams(&mut self) -> Result<(), Lost> {
        let mut streams = std::mem::take(&mut self.portal_streams);
        let mut result = Ok(());
        for stream in streams.values_mut() {
            if result.is_ok() {
                result = self.hold_rest(stream).await;
            }
        }
        self.portal_streams = streams;
        result
    }

    /// Ends every suspended portal: its shards' replies are read to their end.
    pub(super) async fn close_portal_streams(&mut self) -> Result<(), Lost> {
        let streams = std::mem::take(&mut self.portal_streams);
        for (_, mut stream) in streams {
            self.close_sources(&mut stream).await?;
        }
        Ok(())
    }

    /// An error for this statement, in the protocol's shape.
    pub(super) async fn statement_error(&mut self, code: &str, message: &str) -> Outcome {
        tracing::debug!("refused: {message}");
        self.txn.fail();
        let error = error_response(Severity::Error, code, message);
        if self.core.client.write_frame(&error).await.is_err() {
            return Outcome::Stop;
        }
        Outcome::Failed
    }

    /// The shards a plan runs on, and what each is sent.
    pub(super) fn dispatch_for(&mut self, plan: &ShardPlan, stmt: &Statement<'_>) -> Dispatch {
        let shards: Vec<usize> = match &plan.target {
            ShardTarget::Shards(list) => list.clone(),
            ShardTarget::All => (0..self.links.len()).collect(),
            ShardTarget::AnyOne => vec![self.any_shard()],
        };
        let results = match &plan.merge {
            ResultMerge::Rows(merge) => ShardResults::for_merge(merge, stmt.portal),
            _ => ShardResults::AsClient,
        };
        let frames = shards
            .iter()
            .map(|&shard| shard_frames(plan, stmt, shard, &results))
            .collect();
        Dispatch {
            shards,
            frames,
            results,
        }
    }

    /// A merge of `SELECT *` for a client that wants binary results: the shards' column
    /// count, read from a Describe on the first shard, lets each column be asked for in
    /// its own format (text where the merge reads it, else the client's), so that every
    /// type passes through. Without it every column comes as text and the proxy converts
    /// what it can. A shard's error for the statement is returned: it is the statement's.
    async fn resolve_column_formats(
        &mut self,
        plan: &ShardPlan,
        dispatch: &mut Dispatch,
        stmt: &Statement<'_>,
    ) -> Result<Option<Frame>, Lost> {
        let (ResultMerge::Rows(merge), Some(portal), ShardResults::Text) =
            (&plan.merge, stmt.portal, &dispatch.results)
        else {
            return Ok(None);
        };
        let Some(&shard) = dispatch.shards.first() else {
            return Ok(None);
        };
        let (sql, _) = shard_statement(plan, stmt, shard);
        let probe = [
            parse_frame(sql, &portal.statement.types),
            describe_frame(b'S'),
            sync_frame(),
        ];
        self.send_to(shard, &probe).await?;
        let (mut columns, mut error) = (None, None);
        loop {
            let frame = self.reply(shard).await?;
            match frame.tag() {
                tag::ROW_DESCRIPTION => {
                    columns = crate::merge::RowDescription::parse(&frame)
                        .ok()
                        .map(|d| d.columns.len());
                }
                tag::ERROR_RESPONSE => error = Some(frame),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        if error.is_some() {
            return Ok(error);
        }
        let Some(visible) = columns.and_then(|c| c.checked_sub(merge.hidden_columns)) else {
            return Ok(None);
        };
        let resolved = RowMerge {
            visible_columns: Some(visible),
            ..merge.clone()
        };
        dispatch.results = ShardResults::for_merge(&resolved, Some(portal));
        dispatch.frames = dispatch
            .shards
            .iter()
            .map(|&shard| shard_frames(plan, stmt, shard, &dispatch.results))
            .collect();
        Ok(None)
    }

    /// A shard for a statement any shard can answer: one already held, else the next in
    /// turn.
    fn any_shard(&mut self) -> usize {
        if let Some(held) = self.links.iter().position(Option::is_some) {
            return held;
        }
        self.turn = self.turn.wrapping_add(1);
        self.turn % self.links.len().max(1)
    }

    pub(super) async fn run_plan(
        &mut self,
        plan: &ShardPlan,
        dispatch: Dispatch,
        stmt: &Statement<'_>,
        write: bool,
    ) -> Outcome {
        let multi_write = dispatch.shards.len() > 1
            && matches!(
                plan.merge,
                ResultMerge::Counts
                    | ResultMerge::InsertReturning { .. }
                    | ResultMerge::Copy(_)
                    | ResultMerge::CopyEverywhere
            );
        // A write on several shards outside a transaction runs in one on each, so an
        // error on one shard undoes it on all.
        let implicit = multi_write && !self.txn.is_open();
        let need = self.need(write);
        self.core.cancel.waiting();
        for &shard in &dispatch.shards {
            if let Err(failure) = self.ensure_link(shard, need, implicit).await {
                // Nothing waits any more: later cancels go to the servers.
                self.core.cancel.sending();
                if implicit {
                    self.abort_implicit(&dispatch.shards).await;
                }
                let outcome = self.checkout_failed(failure).await;
                self.release_links();
                return outcome;
            }
        }
        if write {
            // Which shards the transaction wrote on decides how it commits.
            for &shard in &dispatch.shards {
                if let Some(link) = self.links[shard].as_mut() {
                    link.wrote = true;
                }
            }
        }
        let targets = dispatch
            .shards
            .iter()
            .filter_map(|&s| self.links[s].as_ref())
            .map(|link| CancelTarget {
                addr: link.server.addr.clone(),
                pid: link.server.pid,
                key: link.server.secret_key,
            })
            .collect();
        self.core.cancel.running_on(targets);
        let mut dispatch = dispatch;
        let mut refused = match self.resolve_column_formats(plan, &mut dispatch, stmt).await {
            Ok(refused) => refused,
            Err(lost) => return self.lost(lost).await,
        };
        // A cancel that came while the statement waited for its connections: it never
        // runs, as it would not have started on one server either.
        if self.core.cancel.sending() && refused.is_none() {
            refused = Some(error_response(Severity::Error, "57014", CANCELED_MESSAGE));
        }
        if refused.is_none() {
            for (i, &shard) in dispatch.shards.iter().enumerate() {
                if let Err(lost) = self.send_to(shard, &dispatch.frames[i]).await {
                    return self.lost(lost).await;
                }
            }
        }
        let result = match (refused, &plan.merge) {
            // The shard refused the statement already when describing it: that is the
            // statement's error.
            (Some(error), _) => self.send_client(&error).await.map(|()| Outcome::Failed),
            (None, merge) => self.merge_replies(merge, &dispatch, stmt, implicit).await,
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(lost) => return self.lost(lost).await,
        };
        self.after_statement(&dispatch, outcome, write)
    }

    /// The shards' replies to a sent statement, combined for the client as the plan says.
    async fn merge_replies(
        &mut self,
        merge: &ResultMerge,
        dispatch: &Dispatch,
        stmt: &Statement<'_>,
        implicit: bool,
    ) -> Result<Outcome, Lost> {
        match merge {
            ResultMerge::PassThrough => self.pass_through(dispatch.shards[0]).await,
            ResultMerge::Rows(merge) => self.merge_rows(dispatch, merge, stmt).await,
            ResultMerge::Counts => self.write_counts(dispatch, None, stmt, implicit).await,
            ResultMerge::InsertReturning { row_shards } => {
                self.write_counts(dispatch, Some(row_shards), stmt, implicit)
                    .await
            }
            ResultMerge::CopyEverywhere => self.copy_in(dispatch, None, implicit).await,
            ResultMerge::CopyOut { header } => self.copy_out(dispatch, *header).await,
            ResultMerge::Same => self.same(dispatch).await,
            ResultMerge::Copy(split) => self.copy_in(dispatch, Some(split), implicit).await,
        }
    }

    /// The transaction's state after a statement, and the servers given back.
    fn after_statement(&mut self, dispatch: &Dispatch, outcome: Outcome, write: bool) -> Outcome {
        if self.txn.is_open() {
            let failed = dispatch
                .shards
                .iter()
                .filter_map(|&s| self.links[s].as_ref())
                .any(|l| l.server.status == b'E');
            if failed || matches!(outcome, Outcome::Failed) {
                self.txn.fail();
            }
        } else if write && matches!(outcome, Outcome::Done) {
            self.core.written_at = Some(std::time::Instant::now());
        }
        self.release_links();
        outcome
    }

    /// Where this session's next statement may run.
    pub(super) fn need(&self, write: bool) -> Need {
        match &self.txn {
            TxnState::Open {
                read_only: true, ..
            } => Need::Read(self.read_needs()),
            TxnState::Open { .. } => Need::Primary,
            TxnState::Idle if write => Need::Primary,
            TxnState::Idle => Need::Read(self.read_needs()),
        }
    }

    fn read_needs(&self) -> ReadNeeds {
        ReadNeeds::for_read(
            self.core.db.config.routing.read_your_writes,
            self.core.written_at,
            self.core.role.current(),
            self.replica_hint,
        )
    }

    /// A server on `shard` fit for `need`, in the session's transaction if one is open
    /// (or in an implicit one for a multi-shard write).
    pub(super) async fn ensure_link(
        &mut self,
        shard: usize,
        need: Need,
        implicit: bool,
    ) -> Result<(), CheckoutFailure> {
        let unfit = match (&self.links[shard], need) {
            (None, _) => true,
            (Some(link), Need::Primary) => !link.on_primary,
            (Some(_), Need::Read(_)) => false,
        };
        if unfit {
            if let Some(old) = self.links[shard].take() {
                if old.in_transaction {
                    self.links[shard] = Some(old);
                    return Err(CheckoutFailure::Refused(error_response(
                        Severity::Error,
                        "25006",
                        "pgshard: the transaction started on a replica cannot write; begin \
                         it without READ ONLY",
                    )));
                }
            }
            let link = checkout(&mut self.core.checkout(), shard, need).await?;
            self.links[shard] = Some(link);
        }
        let begin = match &self.txn {
            TxnState::Open { begin, .. } => Some(begin.as_str()),
            TxnState::Idle if implicit => Some("BEGIN"),
            TxnState::Idle => None,
        };
        if let (Some(begin), Some(link)) = (begin, self.links[shard].as_mut()) {
            if !link.in_transaction {
                // A shard the transaction reaches late gets its savepoints too, so that a
                // rollback to one undoes what it did there since.
                let savepoints = self.txn.savepoints().iter().map(|s| s.sql.as_str());
                for sql in std::iter::once(begin).chain(savepoints) {
                    match link.server.run_quietly(sql).await {
                        Ok(None) => {
                            link.in_transaction = true;
                            link.wrote = false;
                        }
                        Ok(Some(error)) => return Err(CheckoutFailure::Refused(error)),
                        Err(e) => {
                            return Err(CheckoutFailure::Unavailable(format!(
                                "pgshard: server connection failed: {e}"
                            )))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends an implicit transaction on `shards`: COMMIT when `commit` (see
    /// [`Self::commit_shards`]), else ROLLBACK. Returns the error of a commit; `Err` only
    /// when an injected fault stopped the proxy mid-commit.
    pub(super) async fn end_implicit(
        &mut self,
        shards: &[usize],
        commit: bool,
    ) -> Result<Option<Frame>, Lost> {
        if commit {
            return self.commit_shards(shards).await;
        }
        self.rollback_shards(shards).await;
        Ok(None)
    }

    async fn abort_implicit(&mut self, shards: &[usize]) {
        self.rollback_shards(shards).await;
    }

    /// One shard runs the statement: its replies go to the client as they come.
    async fn pass_through(&mut self, shard: usize) -> Result<Outcome, Lost> {
        let mut outcome = Outcome::Done;
        loop {
            let frame = self.reply(shard).await?;
            match frame.tag() {
                tag::READY_FOR_QUERY => break,
                tag::ERROR_RESPONSE => outcome = Outcome::Failed,
                tag::COPY_IN_RESPONSE => {
                    self.send_client(&frame).await?;
                    self.flush_client().await?;
                    if !self.relay_copy_in(&[shard]).await? {
                        outcome = Outcome::Failed;
                    }
                    continue;
                }
                _ => {}
            }
            self.send_client(&frame).await?;
        }
        Ok(outcome)
    }

    /// Every shard runs it and must succeed; the client hears the first shard once.
    ///
    /// The other shards are heard first, keeping only an error; then the first shard's
    /// reply streams to the client as it comes, so a large one is never held whole.
    async fn same(&mut self, dispatch: &Dispatch) -> Result<Outcome, Lost> {
        let first = dispatch.shards[0];
        let mut error = None;
        for &shard in dispatch.shards.iter().skip(1) {
            if let Some(e) = self.broadcast_reply(shard, false).await? {
                error.get_or_insert(e);
            }
        }
        if let Some(error) = error {
            self.broadcast_reply(first, false).await?;
            self.send_client(&error).await?;
            return Ok(Outcome::Failed);
        }
        match self.broadcast_reply(first, true).await? {
            Some(_) => Ok(Outcome::Failed),
            None => Ok(Outcome::Done),
        }
    }

    /// Reads one shard's reply to a broadcast statement up to its ReadyForQuery,
    /// passing it to the client when `relay` (errors included); returns its error.
    async fn broadcast_reply(&mut self, shard: usize, relay: bool) -> Result<Option<Frame>, Lost> {
        let mut error = None;
        loop {
            let frame = self.reply(shard).await?;
            match frame.tag() {
                tag::READY_FOR_QUERY => return Ok(error),
                tag::COPY_IN_RESPONSE => {
                    // COPY FROM is planned apart; anything else copying is refused.
                    let fail = Frame::new(tag::COPY_FAIL, b"pgshard: unexpected COPY\0");
                    self.end_copy(shard, fail).await?;
                    continue;
                }
                tag::ERROR_RESPONSE => {
                    error.get_or_insert(frame.clone());
                }
                _ => {}
            }
            if relay {
                self.send_client(&frame).await?;
            }
        }
    }

    pub(super) async fn send_client(&mut self, frame: &Frame) -> Result<(), Lost> {
        if let Some(limit) = self.row_limit.as_mut() {
            match limit.pass(frame) {
                Passage::Send => {}
                Passage::Drop => return Ok(()),
                Passage::Suspend => {
                    return self
                        .core
                        .client
                        .write_frame(&portal_suspended())
                        .await
                        .map_err(|_| Lost {
                            shard: usize::MAX,
                            reason: "client gone".into(),
                        })
                }
            }
        }
        self.core.client.write_frame(frame).await.map_err(|_| Lost {
            shard: usize::MAX,
            reason: "client gone".into(),
        })
    }

    pub(super) async fn flush_client(&mut self) -> Result<(), Lost> {
        self.core.client.flush().await.map_err(|_| Lost {
            shard: usize::MAX,
            reason: "client gone".into(),
        })
    }

    /// A server (or the client) connection failed mid-statement: the client's work on
    /// it is lost, and it is told so.
    pub(super) async fn lost(&mut self, lost: Lost) -> Outcome {
        self.portal_streams.clear();
        self.suspending = None;
        self.cursors.clear();
        for slot in &mut self.links {
            if let Some(link) = slot.as_mut() {
                // Other shards may be mid-reply: their connections cannot be reused.
                link.server.broken = true;
            }
            *slot = None;
        }
        self.txn = TxnState::Idle;
        if lost.shard != usize::MAX {
            tracing::warn!(
                shard = lost.shard,
                "server connection failed: {}",
                lost.reason
            );
            let _ = self
                .core.client
                .send(&error_response(
                    Severity::Fatal,
                    "08006",
                    &format!(
                        "pgshard: lost the connection to shard {}: {}; the transaction, if any, is lost",
                        lost.shard, lost.reason
                    ),
                ))
                .await;
        }
        Outcome::Stop
    }

    /// BEGIN: the transaction opens on each shard when it is first used.
    async fn begin(&mut self, sql: &str, read_only: bool) -> Outcome {
        if self.block == ImplicitBlock::Open {
            // As in PostgreSQL, BEGIN makes the block's transaction an explicit one.
            self.block = ImplicitBlock::Pending;
        } else if self.txn.is_open() {
            let warning = messages::notice_response(
                "WARNING",
                "25001",
                "there is already a transaction in progress",
            );
            if self.core.client.write_frame(&warning).await.is_err() {
                return Outcome::Stop;
            }
        } else {
            self.txn = TxnState::open(sql, read_only);
        }
        self.complete("BEGIN").await
    }

    /// COMMIT (`commit`) or ROLLBACK of every shard the transaction reached.
    async fn end_transaction(&mut self, commit: bool) -> Outcome {
        // As in PostgreSQL, also when it ends the block's implicit transaction.
        let implicit = self.block == ImplicitBlock::Open;
        if implicit {
            self.block = ImplicitBlock::Pending;
        }
        if implicit || !self.txn.is_open() {
            let warning = messages::notice_response(
                "WARNING",
                "25P01",
                "there is no transaction in progress",
            );
            if self.core.client.write_frame(&warning).await.is_err() {
                return Outcome::Stop;
            }
        }
        if !self.txn.is_open() {
            return self
                .complete(if commit { "COMMIT" } else { "ROLLBACK" })
                .await;
        }
        let commit = commit && !self.txn.failed();
        // The transaction's portals and cursors end with it.
        self.portals.clear();
        self.suspended.clear();
        self.fetched_to_end.clear();
        self.portal_streams.clear();
        self.cursors.clear();
        match self.close_transaction(commit).await {
            Ok(None) => {}
            Ok(Some(error)) => {
                if self.core.client.write_frame(&error).await.is_err() {
                    return Outcome::Stop;
                }
                return Outcome::Failed;
            }
            Err(lost) => return self.lost(lost).await,
        }
        self.complete(if commit { "COMMIT" } else { "ROLLBACK" })
            .await
    }

    /// Ends the implicit transaction of a simple query string or an extended batch, if
    /// the block opened one: COMMIT when all of it went through, else ROLLBACK. The
    /// client hears only a failed commit.
    pub(super) async fn end_block(&mut self) -> Outcome {
        let block = std::mem::take(&mut self.block);
        if block != ImplicitBlock::Open || !self.txn.is_open() {
            return Outcome::Done;
        }
        let commit = !self.txn.failed();
        match self.close_transaction(commit).await {
            Ok(None) => Outcome::Done,
            Ok(Some(error)) => match self.core.client.write_frame(&error).await {
                Ok(()) => Outcome::Failed,
                Err(_) => Outcome::Stop,
            },
            Err(lost) => self.lost(lost).await,
        }
    }

    /// COMMIT (`commit`) or ROLLBACK on every shard the open transaction reached; the
    /// error of a commit, if any (`Err`: an injected fault stopped the proxy).
    async fn close_transaction(&mut self, commit: bool) -> Result<Option<Frame>, Lost> {
        let shards: Vec<usize> = (0..self.links.len()).collect();
        let wrote = self
            .links
            .iter()
            .flatten()
            .any(|l| l.in_transaction && l.on_primary);
        let error = self.end_implicit(&shards, commit).await?;
        self.txn = TxnState::Idle;
        let staged = std::mem::take(&mut self.staged);
        if commit && error.is_none() {
            for effect in &staged {
                self.core.settings.apply(effect);
            }
            if wrote {
                self.core.written_at = Some(std::time::Instant::now());
            }
        }
        // Settings changed in the transaction stay on its servers or were undone: either
        // way they are replayed at their next checkout.
        self.changing_settings = !staged.is_empty();
        self.release_links();
        self.changing_settings = false;
        Ok(error)
    }

    pub(super) async fn complete(&mut self, command: &str) -> Outcome {
        match self
            .core
            .client
            .write_frame(&command_complete(command))
            .await
        {
            Ok(()) => Outcome::Done,
            Err(_) => Outcome::Stop,
        }
    }

    /// `SET`/`RESET`/`SHOW pgshard.*`, answered here.
    async fn proxy_setting(
        &mut self,
        setting: Result<pgshard_router::ProxySetting, pgshard_router::HintError>,
    ) -> Outcome {
        let setting = match setting {
            Ok(s) => s,
            Err(e) => return self.statement_error(e.sqlstate(), &e.to_string()).await,
        };
        let in_transaction = self.txn.is_open();
        let frames = match self.core.answer_proxy_setting(setting, in_transaction) {
            Ok(frames) => frames,
            Err((code, message)) => return self.statement_error(code, &message).await,
        };
        for f in &frames {
            if self.core.client.write_frame(f).await.is_err() {
                return Outcome::Stop;
            }
        }
        Outcome::Done
    }
}

/// The statement one shard runs: its text, and which of the client's parameters it
/// takes (`None`: all of them, in order).
fn shard_statement<'p>(
    plan: &'p ShardPlan,
    stmt: &Statement<'p>,
    shard: usize,
) -> (&'p str, Option<&'p [usize]>) {
    match &plan.statements {
        ShardStatements::Original => (stmt.sql, None),
        ShardStatements::Rewritten(sql) => (sql.as_str(), None),
        ShardStatements::PerShard(list) => match list.iter().find(|s| s.shard == shard) {
            Some(s) => (s.sql.as_str(), Some(s.params.as_slice())),
            None => (stmt.sql, None),
        },
    }
}

/// What one shard is sent for a statement.
fn shard_frames(
    plan: &ShardPlan,
    stmt: &Statement<'_>,
    shard: usize,
    results: &ShardResults,
) -> Vec<Frame> {
    let (sql, params) = shard_statement(plan, stmt, shard);
    match stmt.portal {
        None => vec![messages::query(sql)],
        Some(portal) => {
            let describe = stmt.describe || matches!(plan.merge, ResultMerge::Rows(_));
            extended_frames(portal, sql, params, describe, results)
        }
    }
}

/// The extended-protocol messages one shard is sent for a portal: its own Parse and
/// Bind (a split statement takes some of the parameters), Describe when the proxy needs
/// the columns, Execute and Sync.
fn extended_frames(
    portal: &Portal,
    sql: &str,
    params: Option<&[usize]>,
    describe: bool,
    results: &ShardResults,
) -> Vec<Frame> {
    let (types, formats, values): (Vec<u32>, Vec<i16>, Vec<Option<Bytes>>) = match params {
        None => (
            portal.statement.types.clone(),
            portal.formats.clone(),
            portal.values.clone(),
        ),
        Some(indexes) => (
            indexes
                .iter()
                .map(|&i| portal.statement.types.get(i).copied().unwrap_or(0))
                .collect(),
            indexes
                .iter()
                .map(|&i| portal.formats.get(i).copied().unwrap_or(0))
                .collect(),
            indexes
                .iter()
                .map(|&i| portal.values.get(i).cloned().flatten())
                .collect(),
        ),
    };
    let results: Vec<i16> = match results {
        ShardResults::AsClient => portal.result_formats.clone(),
        ShardResults::Text => Vec::new(),
        ShardResults::PerColumn(formats) => formats.clone(),
    };
    let mut frames = vec![
        parse_frame(sql, &types),
        bind_frame(&formats, &values, &results),
    ];
    if describe {
        frames.push(describe_frame(b'P'));
    }
    frames.push(execute_frame());
    frames.push(sync_frame());
    frames
}

#[allow(dead_code)]
fn flow_of(outcome: Outcome) -> Flow {
    match outcome {
        Outcome::Stop => Flow::Stop,
        _ => Flow::Continue,
    }
}
