//! A merged result on its way to the client, which can stop after any row and go on
//! later: an Execute with a row limit leaves its portal suspended and the next Execute
//! resumes it; a cursor gives the next rows at each FETCH.
//!
//! Rows are merged as they are read: each shard's in turn, or the least of the shards'
//! next rows for an ordered result, one row per shard in memory. A portal's shards keep
//! the rest of their reply unread on their connections while it is suspended; a cursor's
//! shards hold a cursor of their own, fetched a batch at a time, so other statements can
//! run between FETCHes. Grouped results come from shards that sort their groups by the
//! keys, so the merge combines one key at a time and sends each group as it is complete;
//! where the proxy cannot compare the keys as the shards sorted them (text under another
//! collation than "C", types it cannot order) every group is combined in memory first.
//! Groups ordered by something else than their keys are sorted in memory, only as many
//! as the LIMIT reaches when there is one.

use std::collections::VecDeque;

use pgshard_router::plan::{Grouping, RowMerge};

use super::merge_rows::MergeTypes;
use super::replies::Lost;
use super::ShardedSession;
use crate::merge::groups::out_of_order;
use crate::merge::order::resolve;
use crate::merge::{
    Admit, Groups, MergeError, Row, RowOrder, SortedGroups, SortedRows, ValueType, Window,
};
use crate::net::messages::{self, error_response};
use crate::net::{Frame, Severity};

/// Rows a shard's cursor is asked for at a time.
const CURSOR_BATCH: usize = 200;

/// Bytes of rows a suspended portal may hold in memory when another statement needs its
/// shards' connections before it is fetched to the end.
const HOLD_LIMIT: usize = 64 << 20;

/// Where one shard's rows come from.
pub(super) enum ShardRows {
    /// The reply to the statement the shard was sent, read as it arrives; `done` once
    /// it ended (its ReadyForQuery read).
    Reply { done: bool },
    /// A cursor declared on the shard, fetched [`CURSOR_BATCH`] rows at a time.
    Cursor {
        name: String,
        fetched: VecDeque<Row>,
        exhausted: bool,
    },
}

/// How the merged rows are written for the client.
pub(super) struct Output {
    pub visible: usize,
    /// Per visible column: the type and whether to convert it to binary (the client
    /// wants binary, the shards sent text).
    pub convert: Option<Vec<(ValueType, bool)>>,
}

/// A merged result that can be read in parts; see the module doc.
pub(super) struct RowStream {
    pub shards: Vec<usize>,
    pub sources: Vec<ShardRows>,
    /// `Some` for an ordered merge: the least head goes first.
    pub order: Option<RowOrder>,
    /// Each shard's next row, for an ordered merge; read on first use.
    heads: Vec<Option<Row>>,
    primed: bool,
    /// The shard being read, for a merge in any order.
    at: usize,
    /// Rows merged already (a grouped result, or the rest of a portal held when its
    /// shards were needed): sent before anything else, past the window.
    held: VecDeque<Row>,
    /// Every row is in `held`: the shards are done.
    all_held: bool,
    /// Groups combined as the shards' sorted rows arrive (`order` is the keys' order).
    grouped: Option<Box<SortedGroups>>,
    window: Window,
    pub output: Output,
    /// The client's RowDescription, for a FETCH over the simple protocol.
    pub description: Frame,
    /// The error the stream ends with after its held rows (its rest did not fit in
    /// memory, or a shard failed while it was held).
    broken: Option<Frame>,
}

/// How far a part of the stream went.
pub(super) enum Pumped {
    /// The row count asked for was sent: more rows may follow.
    Suspended(u64),
    /// The rows ended after this many; with the error that ended them, if one did.
    Finished(u64, Option<Frame>),
}

impl RowStream {
    pub fn new(
        shards: Vec<usize>,
        sources: Vec<ShardRows>,
        merge: &RowMerge,
        output: Output,
        description: Frame,
    ) -> RowStream {
        RowStream {
            heads: shards.iter().map(|_| None).collect(),
            shards,
            sources,
            order: None,
            primed: false,
            at: 0,
            held: VecDeque::new(),
            all_held: false,
            grouped: None,
            window: Window::new(merge.offset, merge.limit),
            output,
            description,
            broken: None,
        }
    }

    /// Whether some shard's connection is mid-reply for this stream.
    pub fn reading(&self, shard: usize) -> bool {
        self.shards
            .iter()
            .zip(&self.sources)
            .any(|(&s, source)| s == shard && matches!(source, ShardRows::Reply { done: false }))
    }
}

impl ShardedSession {
    /// Starts a grouped merge: streamed from the shards' sorted groups where the proxy
    /// can compare the keys as they sorted them, else every group combined in memory.
    /// Groups the client orders otherwise than by their keys are sorted here, and held.
    pub(super) async fn start_grouped(
        &mut self,
        stream: &mut RowStream,
        merge: &RowMerge,
        grouping: &Grouping,
        types: &mut MergeTypes,
    ) -> Result<Result<(), Frame>, Lost> {
        let visible = stream.output.visible;
        let computations = std::mem::take(&mut types.computations);
        let groups = Groups::new(grouping, types.shard.clone(), visible)
            .and_then(|g| g.compute(computations, types.merged.clone()));
        let mut groups = match groups {
            Ok(g) => g,
            Err(e) => return self.stream_failed(stream, e).await,
        };
        let order = match RowOrder::new(&merge.order_by, &types.merged, visible) {
            Ok(o) => o,
            Err(e) => return self.stream_failed(stream, e).await,
        };
        if let Some(keys) = self.key_order(grouping, &types.shard, visible) {
            stream.order = Some(keys.clone());
            if let Err(error) = self.prime(stream).await? {
                self.close_sources(stream).await?;
                return Ok(Err(error));
            }
            // A value the proxy cannot order (a DateStyle it does not read) shows in
            // the first rows, before anything is sent: then group in memory.
            let comparable = stream
                .heads
                .iter()
                .flatten()
                .all(|head| keys.compare(head, head).is_ok());
            if comparable {
                let sorted = SortedGroups::new(groups, keys, merge.having.clone());
                stream.grouped = Some(Box::new(sorted));
                let in_key_order = merge.order_by.len() <= grouping.sorted_by.len()
                    && merge.order_by[..] == grouping.sorted_by[..merge.order_by.len()];
                if in_key_order {
                    // Sent as they are complete; the window applies as they go.
                    return Ok(Ok(()));
                }
                let window = std::mem::replace(&mut stream.window, Window::new(0, None));
                let mut rows = SortedRows::new(order, &window);
                loop {
                    match self.next_grouped(stream).await? {
                        Ok(Some(row)) => {
                            if let Err(e) = rows.push(row) {
                                return self.stream_failed(stream, e).await;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            self.close_sources(stream).await?;
                            return Ok(Err(error));
                        }
                    }
                }
                stream.grouped = None;
                return self.hold_groups(stream, rows.finish(window)).await;
            }
            stream.order = None;
        }
        // In memory: the rows read already first, then the rest of each shard's.
        let primed: Vec<Row> = stream.heads.iter_mut().filter_map(Option::take).collect();
        for row in primed {
            if let Err(e) = groups.add(row) {
                return self.stream_failed(stream, e).await;
            }
        }
        for i in 0..stream.shards.len() {
            loop {
                match self.shard_row(stream, i).await? {
                    Ok(Some(row)) => {
                        if let Err(e) = groups.add(row) {
                            return self.stream_failed(stream, e).await;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        self.close_sources(stream).await?;
                        return Ok(Err(error));
                    }
                }
            }
        }
        let window = std::mem::replace(&mut stream.window, Window::new(0, None));
        let rows = groups.finish(merge.having.as_ref(), &order, window);
        self.hold_groups(stream, rows).await
    }

    /// The order the shards sorted their groups in, if the proxy compares the key
    /// columns' values the same way.
    fn key_order(
        &self,
        grouping: &Grouping,
        types: &[ValueType],
        visible: usize,
    ) -> Option<RowOrder> {
        if grouping.sorted_by.is_empty() {
            return None;
        }
        let bytewise = self.core.db.bytewise_text.get() == Some(&true);
        let comparable =
            grouping
                .sorted_by
                .iter()
                .all(|key| match types.get(resolve(key.column, visible)) {
                    Some(ValueType::Other { .. }) | None => false,
                    Some(
                        ValueType::Text | ValueType::Bpchar | ValueType::Array { oid: 1009 | 1015 },
                    ) => bytewise,
                    Some(_) => true,
                });
        if !comparable {
            return None;
        }
        RowOrder::new(&grouping.sorted_by, types, visible).ok()
    }

    /// Keeps the merged groups to be sent; the shards are done.
    async fn hold_groups(
        &mut self,
        stream: &mut RowStream,
        rows: Result<Vec<Row>, MergeError>,
    ) -> Result<Result<(), Frame>, Lost> {
        match rows {
            Ok(rows) => {
                self.close_sources(stream).await?;
                stream.held = rows.into();
                stream.all_held = true;
                Ok(Ok(()))
            }
            Err(e) => self.stream_failed(stream, e).await,
        }
    }

    /// The next complete group of a streamed grouped merge.
    async fn next_grouped(
        &mut self,
        stream: &mut RowStream,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
        loop {
            let Some(sorted) = stream.grouped.as_mut() else {
                return Ok(Ok(None));
            };
            if let Some(row) = sorted.pop() {
                return Ok(Ok(Some(row)));
            }
            if sorted.is_done() {
                return Ok(Ok(None));
            }
            let row = match self.next_ordered(stream).await? {
                Ok(row) => row,
                Err(error) => return Ok(Err(error)),
            };
            if let Some(sorted) = stream.grouped.as_mut() {
                if let Err(e) = sorted.push(row) {
                    return Ok(Err(merge_error(e)));
                }
            }
        }
    }

    /// Sends up to `budget` rows (all when `None`) to the client, or only counts them
    /// when `send` is false (MOVE).
    pub(super) async fn pump(
        &mut self,
        stream: &mut RowStream,
        budget: Option<u64>,
        send: bool,
    ) -> Result<Pumped, Lost> {
        let mut sent = 0u64;
        loop {
            if budget == Some(sent) {
                return Ok(Pumped::Suspended(sent));
            }
            if stream.held.is_empty() && stream.all_held {
                if let Some(error) = stream.broken.take() {
                    return Ok(Pumped::Finished(sent, Some(error)));
                }
            }
            match self.next_merged(stream).await? {
                Ok(Some(row)) => {
                    if send {
                        if let Err(e) = self.emit(&row, &stream.output).await? {
                            self.close_sources(stream).await?;
                            return Ok(Pumped::Finished(sent, Some(merge_error(e))));
                        }
                    }
                    sent += 1;
                }
                Ok(None) => return Ok(Pumped::Finished(sent, None)),
                Err(error) => return Ok(Pumped::Finished(sent, Some(error))),
            }
        }
    }

    /// Reads the rest of a suspended portal's rows into memory, so that its shards'
    /// connections can serve another statement. Beyond [`HOLD_LIMIT`] the portal is
    /// given up: its next Execute is refused.
    pub(super) async fn hold_rest(&mut self, stream: &mut RowStream) -> Result<(), Lost> {
        if stream.all_held {
            return Ok(());
        }
        let mut bytes: usize = stream.held.iter().map(row_size).sum();
        loop {
            match self.next_merged_from_shards(stream).await? {
                Ok(Some(row)) => {
                    bytes += row_size(&row);
                    stream.held.push_back(row);
                    if bytes > HOLD_LIMIT {
                        self.close_sources(stream).await?;
                        stream.held.clear();
                        let message = format!(
                            "pgshard: the rest of this portal (over {} MB) could not be held \
                             while other statements ran on its shards; fetch a portal to \
                             its end before running other statements, or use a cursor \
                             (DECLARE … CURSOR)",
                            HOLD_LIMIT >> 20
                        );
                        stream.broken = Some(error_response(Severity::Error, "0A000", &message));
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // The error comes after the held rows, as it would have.
                    stream.broken = Some(error);
                    break;
                }
            }
        }
        stream.all_held = true;
        Ok(())
    }

    /// Ends a stream the client no longer reads: its shards' replies are read to their
    /// end.
    pub(super) async fn close_sources(&mut self, stream: &mut RowStream) -> Result<(), Lost> {
        for i in 0..stream.shards.len() {
            if let ShardRows::Reply { done } = &mut stream.sources[i] {
                if !*done {
                    *done = true;
                    self.drain(stream.shards[i]).await?;
                }
            }
        }
        stream.all_held = true;
        Ok(())
    }

    async fn stream_failed(
        &mut self,
        stream: &mut RowStream,
        e: MergeError,
    ) -> Result<Result<(), Frame>, Lost> {
        self.close_sources(stream).await?;
        Ok(Err(merge_error(e)))
    }

    /// The next row for the client: held rows first, then the shards' rows merged and
    /// passed through the window.
    async fn next_merged(
        &mut self,
        stream: &mut RowStream,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
        if let Some(row) = stream.held.pop_front() {
            return Ok(Ok(Some(row)));
        }
        if stream.all_held {
            return Ok(Ok(None));
        }
        self.next_merged_from_shards(stream).await
    }

    async fn next_merged_from_shards(
        &mut self,
        stream: &mut RowStream,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
        loop {
            let row = if stream.grouped.is_some() {
                self.next_grouped(stream).await?
            } else if stream.order.is_some() {
                self.next_ordered(stream).await?
            } else {
                self.next_in_turn(stream).await?
            };
            let row = match row {
                Ok(Some(row)) => row,
                Ok(None) => {
                    self.close_sources(stream).await?;
                    return Ok(Ok(None));
                }
                Err(error) => {
                    self.close_sources(stream).await?;
                    return Ok(Err(error));
                }
            };
            match stream.window.admit() {
                Admit::Skip => {}
                Admit::Take => return Ok(Ok(Some(row))),
                Admit::Done => {
                    self.close_sources(stream).await?;
                    return Ok(Ok(None));
                }
            }
        }
    }

    /// Shards in turn.
    async fn next_in_turn(
        &mut self,
        stream: &mut RowStream,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
        while stream.at < stream.shards.len() {
            match self.shard_row(stream, stream.at).await? {
                Ok(Some(row)) => return Ok(Ok(Some(row))),
                Ok(None) => stream.at += 1,
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(None))
    }

    /// Reads each shard's first row, for an ordered merge.
    async fn prime(&mut self, stream: &mut RowStream) -> Result<Result<(), Frame>, Lost> {
        if !stream.primed {
            stream.primed = true;
            for i in 0..stream.shards.len() {
                match self.shard_row(stream, i).await? {
                    Ok(row) => stream.heads[i] = row,
                    Err(error) => return Ok(Err(error)),
                }
            }
        }
        Ok(Ok(()))
    }

    /// The least of the shards' next rows. A shard whose next row sorts before the one
    /// it sent last does not sort as the proxy compares: an error, not a misordered
    /// answer.
    async fn next_ordered(
        &mut self,
        stream: &mut RowStream,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
        if let Err(error) = self.prime(stream).await? {
            return Ok(Err(error));
        }
        let Some(order) = stream.order.as_ref() else {
            return Ok(Ok(None));
        };
        let mut best: Option<usize> = None;
        for (i, head) in stream.heads.iter().enumerate() {
            let Some(row) = head else { continue };
            best = match best.and_then(|b| stream.heads[b].as_ref().map(|r| (b, r))) {
                None => Some(i),
                Some((b, current)) => match order.compare(row, current) {
                    Ok(std::cmp::Ordering::Less) => Some(i),
                    Ok(_) => Some(b),
                    Err(e) => return Ok(Err(merge_error(e))),
                },
            };
        }
        let Some(b) = best else {
            return Ok(Ok(None));
        };
        let row = stream.heads[b].take();
        let next = match self.shard_row(stream, b).await? {
            Ok(next) => next,
            Err(error) => return Ok(Err(error)),
        };
        if let (Some(order), Some(next), Some(taken)) = (stream.order.as_ref(), &next, &row) {
            match order.compare(next, taken) {
                Ok(std::cmp::Ordering::Less) => return Ok(Err(merge_error(out_of_order()))),
                Ok(_) => {}
                Err(e) => return Ok(Err(merge_error(e))),
            }
        }
        stream.heads[b] = next;
        Ok(Ok(row))
    }

    /// Shard `i`'s next row, `None` at its end, or the error that ended it.
    async fn shard_row(
        &mut self,
        stream: &mut RowStream,
        i: usize,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
        let shard = stream.shards[i];
        match &mut stream.sources[i] {
            ShardRows::Reply { done: true } => Ok(Ok(None)),
            ShardRows::Reply { done } => {
                let row = self.next_row(shard).await?;
                if !matches!(row, Ok(Some(_))) {
                    *done = true;
                }
                Ok(row)
            }
            ShardRows::Cursor {
                name,
                fetched,
                exhausted,
            } => {
                if let Some(row) = fetched.pop_front() {
                    return Ok(Ok(Some(row)));
                }
                if *exhausted {
                    return Ok(Ok(None));
                }
                let fetch = format!("FETCH FORWARD {CURSOR_BATCH} FROM {}", quote_ident(name));
                self.send_to(shard, &[messages::query(&fetch)]).await?;
                loop {
                    match self.next_row(shard).await? {
                        Ok(Some(row)) => fetched.push_back(row),
                        Ok(None) => break,
                        Err(error) => {
                            *exhausted = true;
                            return Ok(Err(error));
                        }
                    }
                }
                if fetched.len() < CURSOR_BATCH {
                    *exhausted = true;
                }
                Ok(Ok(fetched.pop_front()))
            }
        }
    }
}

/// A merge error as the client gets it.
pub(super) fn merge_error(e: MergeError) -> Frame {
    e.response()
}

fn row_size(row: &Row) -> usize {
    row.values
        .iter()
        .map(|v| v.as_ref().map_or(0, |b| b.len()) + 4)
        .sum()
}

/// An identifier quoted for SQL.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
