//! A query that ran on several shards: their rows combined as the plan's [`RowMerge`]
//! says, through a [`RowStream`] that an Execute with a row limit can leave suspended
//! and a later Execute resume.

use pgshard_router::plan::{AggregateKind, RowMerge};

use super::execute::{Dispatch, Outcome, ShardResults, Statement};
use super::replies::Lost;
use super::row_limit::portal_suspended;
use super::row_stream::{Output, Pumped, RowStream, ShardRows};
use super::ShardedSession;
use crate::merge::aggregate::Accumulator;
use crate::merge::binary::to_binary;
use crate::merge::cast::SqlType;
use crate::merge::compute::Computation;
use crate::merge::order::resolve;
use crate::merge::{MergeError, Row, RowDescription, ValueType};
use crate::net::messages::{command_complete, error_response, tag};
use crate::net::{Frame, Severity};

/// The column types of the shards' rows and of the merged rows.
pub(super) struct MergeTypes {
    /// As the shards send them: what aggregates combine and groups compare.
    pub shard: Vec<ValueType>,
    /// Once aggregates are finished and columns computed (an avg's result type, a
    /// cast's target): what HAVING and ORDER BY compare and the client gets.
    pub merged: Vec<ValueType>,
    /// Computed columns, as row indexes, and how they are computed.
    pub computations: Vec<(usize, Computation)>,
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
        let (desc_frame, mut types, output) = match prepared {
            Ok(p) => p,
            Err(e) => return self.merge_failed(&streaming, e).await,
        };
        if stmt.describe {
            self.send_client(&desc_frame).await?;
        }
        // The Execute's row limit is the stream's to keep: rows are not dropped.
        let budget = self.row_limit.take().map(|limit| u64::from(limit.left()));
        let sources = streaming
            .iter()
            .map(|_| ShardRows::Reply { done: false })
            .collect();
        let mut stream = RowStream::new(streaming, sources, merge, output, desc_frame);
        if let Err(error) = self.start_merge(&mut stream, merge, &mut types).await? {
            self.send_client(&error).await?;
            return Ok(Outcome::Failed);
        }
        match self.pump(&mut stream, budget, true).await? {
            Pumped::Finished(sent, None) => {
                self.send_client(&command_complete(&format!("SELECT {sent}")))
                    .await?;
                Ok(Outcome::Done)
            }
            Pumped::Finished(_, Some(error)) => {
                self.send_client(&error).await?;
                Ok(Outcome::Failed)
            }
            Pumped::Suspended(_) => {
                self.send_client(&portal_suspended()).await?;
                self.suspending = Some(stream);
                Ok(Outcome::Done)
            }
        }
    }

    /// The client's RowDescription (hidden columns dropped, avg and computed columns
    /// typed as their result, formats as the client asked), the columns' types, and how
    /// rows are output.
    pub(super) fn prepare_output(
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
        let mut computations = Vec::new();
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
            // After avg's: an expression over an avg starts from the avg's type.
            let combined: Vec<SqlType> = desc
                .columns
                .iter()
                .map(|c| SqlType {
                    oid: c.type_oid,
                    typmod: c.type_modifier,
                })
                .collect();
            for computed in &grouping.computed {
                let column = resolve(computed.column, visible);
                let computation = Computation::new(&computed.expr, visible, &combined)?;
                let output = computation.output();
                let c = desc.columns.get_mut(column).ok_or(MergeError::Mismatch)?;
                c.type_oid = output.oid;
                c.type_size = output.size();
                c.type_modifier = output.typmod;
                c.table_oid = 0;
                c.attribute = 0;
                computations.push((column, computation));
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
        // Columns the client wants in binary that the shards sent as text are converted.
        let convert = if dispatch.results == ShardResults::AsClient {
            None
        } else {
            let wanted: Vec<bool> = (0..visible)
                .map(|i| stmt.portal.is_some_and(|p| p.result_format(i) == 1))
                .collect();
            for (i, c) in desc.columns.iter_mut().enumerate().take(visible) {
                c.format = i16::from(wanted[i]);
            }
            Some(
                out_types
                    .iter()
                    .copied()
                    .enumerate()
                    .map(|(i, ty)| {
                        (
                            ty,
                            wanted[i] && dispatch.results.format(stmt.portal, i) == 0,
                        )
                    })
                    .collect(),
            )
        };
        Ok((
            desc.to_frame(visible),
            MergeTypes {
                shard: types,
                merged,
                computations,
            },
            Output { visible, convert },
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
    pub(super) async fn next_row(
        &mut self,
        shard: usize,
    ) -> Result<Result<Option<Row>, Frame>, Lost> {
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

    pub(super) async fn emit(
        &mut self,
        row: &Row,
        output: &Output,
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
        Ok(Ok(()))
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
            Some(ValueType::Text | ValueType::Bpchar | ValueType::Array { oid: 1009 | 1015 })
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
