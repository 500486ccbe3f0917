//! A query that ran on several shards: their rows combined as the plan's [`RowMerge`]
//! says. Ordered results are merged as streams, one row per shard in memory at a time;
//! grouped results are combined in memory, one entry per group.

use pgshard_router::plan::{AggregateKind, RowMerge};

use super::execute::{Dispatch, Outcome, Statement};
use super::replies::Lost;
use super::ShardedSession;
use crate::merge::aggregate::Accumulator;
use crate::merge::binary::to_binary;
use crate::merge::cast::{SqlType, Wrapping};
use crate::merge::order::resolve;
use crate::merge::{Admit, Groups, MergeError, Row, RowDescription, RowOrder, ValueType, Window};
use crate::net::messages::{command_complete, error_response, tag};
use crate::net::{Frame, Severity};

/// The column types of the shards' rows and of the merged rows.
struct MergeTypes {
    /// As the shards send them: what aggregates combine and groups compare.
    shard: Vec<ValueType>,
    /// Once aggregates are finished and wrapped (an avg's result type, a cast's target):
    /// what HAVING and ORDER BY compare and the client gets.
    merged: Vec<ValueType>,
    /// Wrapped aggregate columns, as row indexes, and what is applied to them.
    wrappings: Vec<(usize, Wrapping)>,
}

/// How merged rows are written for the client.
struct Output {
    visible: usize,
    /// Per visible column: the type and whether the client wants it in binary (when the
    /// shards were asked for text).
    convert: Option<Vec<(ValueType, bool)>>,
    sent: u64,
}

impl ShardedSession {
    pub(super) async fn merge_rows(
        &mut self,
        dispatch: &Dispatch,
        merge: &RowMerge,
        stmt: &Statement<'_>,
    ) -> Result<Outcome, Lost> {
        // Each shard's reply up to its first row: a RowDescription, or an error.
        let (description, streaming, error) = self
            .first_replies(&dispatch.shards, tag::ROW_DESCRIPTION)
            .await?;
        if let Some(error) = error {
            for shard in streaming {
                self.drain(shard).await?;
            }
            self.send_client(&error).await?;
            return Ok(Outcome::Failed);
        }
        let Some(description) = description else {
            return Ok(Outcome::Done);
        };
        let prepared = RowDescription::parse(&description)
            .map_err(|_| MergeError::Mismatch)
            .and_then(|desc| self.prepare_output(desc, merge, dispatch, stmt));
        let (desc_frame, mut types, mut output) = match prepared {
            Ok(p) => p,
            Err(e) => return self.merge_failed(&streaming, e).await,
        };
        if stmt.describe {
            self.send_client(&desc_frame).await?;
        }
        let mut window = Window::new(merge.offset, merge.limit);
        let result = if let Some(grouping) = &merge.group {
            self.merge_groups(
                &streaming,
                merge,
                grouping,
                &mut types,
                output.visible,
                window,
                &mut output,
            )
            .await?
        } else if !merge.order_by.is_empty() {
            match RowOrder::new(&merge.order_by, &types.merged, output.visible) {
                Ok(order) => {
                    self.merge_ordered(&streaming, &order, &mut window, &mut output)
                        .await?
                }
                Err(e) => Err(e),
            }
        } else {
            self.merge_union(&streaming, &mut window, &mut output)
                .await?
        };
        match result {
            Ok(None) => {
                self.send_client(&command_complete(&format!("SELECT {}", output.sent)))
                    .await?;
                Ok(Outcome::Done)
            }
            Ok(Some(error)) => {
                self.send_client(&error).await?;
                Ok(Outcome::Failed)
            }
            Err(e) => {
                self.send_client(&e.response()).await?;
                Ok(Outcome::Failed)
            }
        }
    }

    /// The client's RowDescription (hidden columns dropped, avg and wrapped aggregates
    /// typed as their result, formats as the client asked), the columns' types, and how
    /// rows are output.
    fn prepare_output(
        &self,
        mut desc: RowDescription,
        merge: &RowMerge,
        dispatch: &Dispatch,
        stmt: &Statement<'_>,
    ) -> Result<(Frame, MergeTypes, Output), MergeError> {
        let types: Vec<ValueType> = desc
            .columns
            .iter()
            .map(|c| ValueType::from_oid(c.type_oid))
            .collect();
        let visible = desc
            .columns
            .len()
            .checked_sub(merge.hidden_columns)
            .ok_or(MergeError::Mismatch)?;
        let mut wrappings = Vec::new();
        if let Some(grouping) = &merge.group {
            for aggregate in &grouping.aggregates {
                if let AggregateKind::Avg { .. } = aggregate.kind {
                    let column = resolve(aggregate.column, visible);
                    let sum_type = *types.get(column).ok_or(MergeError::Mismatch)?;
                    if let Some(c) = desc.columns.get_mut(column) {
                        let (oid, size) = Accumulator::avg_result_type(sum_type);
                        c.type_oid = oid;
                        c.type_size = size;
                        c.type_modifier = -1;
                        c.table_oid = 0;
                        c.attribute = 0;
                    }
                }
            }
            // After avg's: a wrapped avg starts from the avg's type.
            for wrapped in &grouping.wrapped {
                let column = resolve(wrapped.column, visible);
                let c = desc.columns.get_mut(column).ok_or(MergeError::Mismatch)?;
                let source = SqlType {
                    oid: c.type_oid,
                    typmod: c.type_modifier,
                };
                let wrapping = Wrapping::new(&wrapped.steps, source)?;
                let output = wrapping.output();
                c.type_oid = output.oid;
                c.type_size = output.size();
                c.type_modifier = output.typmod;
                c.table_oid = 0;
                c.attribute = 0;
                wrappings.push((column, wrapping));
            }
        }
        let merged: Vec<ValueType> = desc
            .columns
            .iter()
            .map(|c| ValueType::from_oid(c.type_oid))
            .collect();
        if self.core.db.bytewise_text.get() != Some(&true) {
            text_order_check(merge, &types, &merged, visible)?;
        }
        let out_types = merged[..visible].to_vec();
        let convert = if dispatch.text_results {
            let wanted: Vec<bool> = (0..visible)
                .map(|i| stmt.portal.is_some_and(|p| p.result_format(i) == 1))
                .collect();
            for (i, c) in desc.columns.iter_mut().enumerate().take(visible) {
                c.format = i16::from(wanted[i]);
            }
            Some(out_types.iter().copied().zip(wanted).collect())
        } else {
            None
        };
        Ok((
            desc.to_frame(visible),
            MergeTypes {
                shard: types,
                merged,
                wrappings,
            },
            Output {
                visible,
                convert,
                sent: 0,
            },
        ))
    }

    async fn merge_failed(&mut self, streaming: &[usize], e: MergeError) -> Result<Outcome, Lost> {
        for &shard in streaming {
            self.drain(shard).await?;
        }
        self.send_client(&e.response()).await?;
        Ok(Outcome::Failed)
    }

    /// The next row of `shard`, or `None` at its end (CommandComplete; the ReadyForQuery
    /// is read too). An error ends the shard's rows and is returned.
    async fn next_row(&mut self, shard: usize) -> Result<Result<Option<Row>, Frame>, Lost> {
        loop {
            let frame = self.reply(shard).await?;
            match frame.tag() {
                tag::DATA_ROW => {
                    return Ok(match Row::parse(&frame) {
                        Ok(row) => Ok(Some(row)),
                        Err(_) => {
                            self.drain(shard).await?;
                            Err(error_response(
                                Severity::Error,
                                "08P01",
                                &format!("pgshard: shard {shard} sent a malformed row"),
                            ))
                        }
                    })
                }
                tag::COMMAND_COMPLETE | tag::EMPTY_QUERY_RESPONSE | tag::PORTAL_SUSPENDED => {
                    return Ok(match self.drain(shard).await? {
                        None => Ok(None),
                        Some(error) => Err(error),
                    })
                }
                tag::ERROR_RESPONSE => {
                    self.drain(shard).await?;
                    return Ok(Err(frame));
                }
                tag::READY_FOR_QUERY => return Ok(Ok(None)),
                _ => {}
            }
        }
    }

    async fn emit(
        &mut self,
        row: &Row,
        output: &mut Output,
    ) -> Result<Result<(), MergeError>, Lost> {
        let frame = match &output.convert {
            None => row.to_frame(output.visible),
            Some(columns) => {
                let mut values = Vec::with_capacity(output.visible);
                for (i, (ty, binary)) in columns.iter().enumerate() {
                    let value = row.values.get(i).cloned().flatten();
                    values.push(match value {
                        Some(v) if *binary => match to_binary(*ty, &v) {
                            Ok(b) => Some(b),
                            Err(e) => return Ok(Err(e)),
                        },
                        other => other,
                    });
                }
                Row { values }.to_frame(output.visible)
            }
        };
        self.send_client(&frame).await?;
        output.sent += 1;
        Ok(Ok(()))
    }

    /// Rows in any order: each shard's in turn.
    async fn merge_union(
        &mut self,
        shards: &[usize],
        window: &mut Window,
        output: &mut Output,
    ) -> Result<Result<Option<Frame>, MergeError>, Lost> {
        let mut error = None;
        for (i, &shard) in shards.iter().enumerate() {
            if window.is_done() || error.is_some() {
                if let Some(e) = self.drain(shard).await? {
                    error.get_or_insert(e);
                }
                continue;
            }
            loop {
                match self.next_row(shard).await? {
                    Ok(Some(row)) => match window.admit() {
                        Admit::Skip => {}
                        Admit::Take => {
                            if let Err(e) = self.emit(&row, output).await? {
                                self.drain_all(&shards[i..]).await?;
                                return Ok(Err(e));
                            }
                        }
                        Admit::Done => {
                            self.drain(shard).await?;
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        Ok(Ok(error))
    }

    /// Rows each shard sorted, merged into one sorted stream.
    async fn merge_ordered(
        &mut self,
        shards: &[usize],
        order: &RowOrder,
        window: &mut Window,
        output: &mut Output,
    ) -> Result<Result<Option<Frame>, MergeError>, Lost> {
        let mut heads: Vec<Option<Row>> = Vec::with_capacity(shards.len());
        let mut error = None;
        for &shard in shards {
            match self.next_row(shard).await? {
                Ok(row) => heads.push(row),
                Err(e) => {
                    error.get_or_insert(e);
                    heads.push(None);
                }
            }
        }
        if error.is_some() {
            self.drain_open(shards, &heads).await?;
            return Ok(Ok(error));
        }
        loop {
            let mut best: Option<usize> = None;
            for (i, head) in heads.iter().enumerate() {
                let Some(row) = head else { continue };
                best = match best {
                    None => Some(i),
                    Some(b) => match heads[b].as_ref().map(|current| order.compare(row, current)) {
                        Some(Ok(std::cmp::Ordering::Less)) => Some(i),
                        Some(Err(e)) => {
                            self.drain_open(shards, &heads).await?;
                            return Ok(Err(e));
                        }
                        _ => Some(b),
                    },
                };
            }
            let Some(b) = best else { break };
            match window.admit() {
                Admit::Skip => {}
                Admit::Take => {
                    if let Some(row) = heads[b].as_ref() {
                        let row = row.clone();
                        if let Err(e) = self.emit(&row, output).await? {
                            self.drain_open(shards, &heads).await?;
                            return Ok(Err(e));
                        }
                    }
                }
                Admit::Done => break,
            }
            heads[b] = match self.next_row(shards[b]).await? {
                Ok(row) => row,
                Err(e) => {
                    heads[b] = None;
                    self.drain_open(shards, &heads).await?;
                    return Ok(Ok(Some(e)));
                }
            };
        }
        self.drain_open(shards, &heads).await?;
        Ok(Ok(error))
    }

    /// Groups (or DISTINCT rows, or aggregates) from every shard, combined.
    #[allow(clippy::too_many_arguments)]
    async fn merge_groups(
        &mut self,
        shards: &[usize],
        merge: &RowMerge,
        grouping: &pgshard_router::plan::Grouping,
        types: &mut MergeTypes,
        visible: usize,
        window: Window,
        output: &mut Output,
    ) -> Result<Result<Option<Frame>, MergeError>, Lost> {
        let wrappings = std::mem::take(&mut types.wrappings);
        let groups = Groups::new(grouping, types.shard.clone(), visible)
            .and_then(|g| g.wrap(wrappings, types.merged.clone()));
        let mut groups = match groups {
            Ok(g) => g,
            Err(e) => {
                self.drain_all(shards).await?;
                return Ok(Err(e));
            }
        };
        for (i, &shard) in shards.iter().enumerate() {
            loop {
                match self.next_row(shard).await? {
                    Ok(Some(row)) => {
                        if let Err(e) = groups.add(row) {
                            self.drain(shard).await?;
                            self.drain_all(&shards[i + 1..]).await?;
                            return Ok(Err(e));
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        self.drain_all(&shards[i + 1..]).await?;
                        return Ok(Ok(Some(error)));
                    }
                }
            }
        }
        let order = match RowOrder::new(&merge.order_by, &types.merged, visible) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let rows = match groups.finish(merge.having.as_ref(), &order, window) {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        for row in &rows {
            if let Err(e) = self.emit(row, output).await? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(None))
    }

    async fn drain_all(&mut self, shards: &[usize]) -> Result<(), Lost> {
        for &shard in shards {
            self.drain(shard).await?;
        }
        Ok(())
    }

    /// Drains the shards whose rows are not finished (those with a head row).
    async fn drain_open(&mut self, shards: &[usize], heads: &[Option<Row>]) -> Result<(), Lost> {
        for (i, head) in heads.iter().enumerate() {
            if head.is_some() {
                self.drain(shards[i]).await?;
            }
        }
        Ok(())
    }
}

/// Refuses to order text when the database's collation is not bytewise: the proxy would
/// put rows in another order than PostgreSQL does. ORDER BY sorts merged values
/// (`merged` types), min and max compare the shards' (`types`).
fn text_order_check(
    merge: &RowMerge,
    types: &[ValueType],
    merged: &[ValueType],
    visible: usize,
) -> Result<(), MergeError> {
    let is_text = |types: &[ValueType], c| {
        matches!(
            types.get(resolve(c, visible)),
            Some(ValueType::Text | ValueType::Bpchar)
        )
    };
    let sorted = merge.order_by.iter().any(|k| is_text(merged, k.column));
    let compared = merge.group.as_ref().is_some_and(|g| {
        g.aggregates.iter().any(|a| {
            matches!(a.kind, AggregateKind::Min | AggregateKind::Max) && is_text(types, a.column)
        })
    });
    if sorted || compared {
        return Err(MergeError::Unsupported(
            "the database's collation is not \"C\", so text from several shards cannot be \
             ordered (ORDER BY, min, max) exactly as PostgreSQL orders it; create the \
             database with LC_COLLATE \"C\" (or \"C.UTF-8\"), or filter on the shard key"
                .to_string(),
        ));
    }
    Ok(())
}
