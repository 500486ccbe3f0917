//! COPY … FROM STDIN on a sharded database: the client's rows relayed to one shard, to
//! every shard (a replicated table), or each row to the shard its key belongs to.

use pgshard_router::plan::{copy_key_field, CopyRowScanner, CopySplit};
use pgshard_router::sharding::{KeyValue, ShardingFunction};

use super::execute::{Dispatch, Outcome};
use super::replies::Lost;
use super::write_counts::split_tag;
use super::ShardedSession;
use crate::net::messages::{command_complete, error_response, tag};
use crate::net::{Frame, Severity};

/// Rows are sent to a shard in CopyData messages of about this size.
const BATCH_BYTES: usize = 64 * 1024;

/// Cuts the client's COPY data into rows and routes each by its key.
struct RowRouter<'a> {
    split: &'a CopySplit,
    function: ShardingFunction,
    shards: usize,
    /// Bytes of a row not complete yet.
    pending: Vec<u8>,
    /// Where the rows in `pending` end, read once.
    scanner: CopyRowScanner,
    /// The longest row taken (`max_message_size`): a longer one fails the COPY.
    max_row: usize,
    /// Rows waiting to be sent, per shard index in the dispatch.
    batches: Vec<Vec<u8>>,
    header_pending: bool,
    ended: bool,
}

impl ShardedSession {
    /// Runs a split COPY FROM STDIN on every shard of `dispatch`.
    pub(super) async fn copy_in(
        &mut self,
        dispatch: &Dispatch,
        split: Option<&CopySplit>,
        implicit: bool,
    ) -> Result<Outcome, Lost> {
        let (response, copying, error) = self
            .first_replies(&dispatch.shards, tag::COPY_IN_RESPONSE)
            .await?;
        let response = match (error, response) {
            (None, Some(response)) => response,
            (error, _) => {
                for shard in copying {
                    self.end_copy(shard, copy_fail("another shard refused the COPY"))
                        .await?;
                    self.drain(shard).await?;
                }
                if implicit {
                    self.rollback_shards(&dispatch.shards).await;
                }
                let error = error.unwrap_or_else(|| {
                    error_response(
                        Severity::Error,
                        "XX000",
                        "pgshard: no shard started the COPY",
                    )
                });
                self.send_client(&error).await?;
                return Ok(Outcome::Failed);
            }
        };
        self.send_client(&response).await?;
        self.flush_client().await?;
        let relayed = match split {
            Some(split) => self.relay_split(&dispatch.shards, split).await?,
            None => self.relay_copy_in(&dispatch.shards).await.map(|ok| {
                if ok {
                    Ok(())
                } else {
                    Err(None)
                }
            })?,
        };
        let mut total = 0;
        let mut error = match relayed {
            Ok(()) => None,
            Err(e) => e,
        };
        let mut failed = error.is_some();
        for &shard in &dispatch.shards {
            loop {
                let frame = self.reply(shard).await?;
                match frame.tag() {
                    tag::READY_FOR_QUERY => break,
                    tag::COMMAND_COMPLETE => {
                        if let Some((_, n)) = split_tag(&frame) {
                            // A split COPY's rows add up; a replicated table's are the
                            // same rows on every shard.
                            if split.is_some() || shard == dispatch.shards[0] {
                                total += n;
                            }
                        }
                    }
                    tag::ERROR_RESPONSE => {
                        failed = true;
                        error.get_or_insert(frame);
                    }
                    _ => {}
                }
            }
        }
        if implicit {
            let commit_error = self.end_implicit(&dispatch.shards, !failed).await?;
            if !failed {
                error = commit_error;
                failed = error.is_some();
            }
        }
        if failed {
            if let Some(error) = error {
                self.send_client(&error).await?;
            }
            return Ok(Outcome::Failed);
        }
        self.send_client(&command_complete(&format!("COPY {total}")))
            .await?;
        Ok(Outcome::Done)
    }

    /// The client's next message during a COPY; if the client is gone, the copy fails on
    /// every shard.
    async fn copy_message(&mut self, shards: &[usize]) -> Result<Frame, Lost> {
        // A message read ahead after the Execute (its Sync or Flush) arrived in copy-in
        // mode: the copy takes it, and ignores it as PostgreSQL does.
        let next = match self.read_ahead.take() {
            Some(frame) => frame,
            None => self.core.client.read_frame().await,
        };
        match next {
            Ok(frame) => Ok(frame),
            Err(_) => {
                for &shard in shards {
                    self.end_copy(shard, copy_fail("client connection lost"))
                        .await?;
                }
                Err(Lost {
                    shard: usize::MAX,
                    reason: "client gone during COPY".into(),
                })
            }
        }
    }

    /// Relays the client's COPY data unchanged to every shard in `shards` until CopyDone
    /// (true) or CopyFail (false). Replies are left to the caller.
    pub(super) async fn relay_copy_in(&mut self, shards: &[usize]) -> Result<bool, Lost> {
        loop {
            let frame = self.copy_message(shards).await?;
            match frame.tag() {
                tag::COPY_DATA => {
                    for &shard in shards {
                        self.write_to(shard, &frame).await?;
                    }
                }
                tag::COPY_DONE => {
                    for &shard in shards {
                        self.end_copy(shard, frame.clone()).await?;
                    }
                    return Ok(true);
                }
                tag::COPY_FAIL => {
                    for &shard in shards {
                        self.end_copy(shard, frame.clone()).await?;
                    }
                    return Ok(false);
                }
                tag::FLUSH | tag::SYNC => {}
                _ => {
                    for &shard in shards {
                        self.end_copy(shard, copy_fail("unexpected message during COPY"))
                            .await?;
                    }
                    return Ok(false);
                }
            }
        }
    }

    /// Relays the client's COPY data row by row to the shard of each row's key. An error
    /// (a row without a valid key) fails the COPY on every shard.
    async fn relay_split(
        &mut self,
        shards: &[usize],
        split: &CopySplit,
    ) -> Result<Result<(), Option<Frame>>, Lost> {
        let function = match ShardingFunction::for_table(&self.core.db.config, split.key_type) {
            Ok(f) => f,
            Err(e) => {
                let message = format!("pgshard: {e}");
                return self.fail_copy(shards, &message, "XX000").await;
            }
        };
        let mut router = RowRouter {
            split,
            function,
            shards: self.links.len(),
            pending: Vec::new(),
            scanner: CopyRowScanner::default(),
            max_row: self.core.ctx.config.proxy.max_message_size as usize,
            batches: vec![Vec::new(); shards.len()],
            header_pending: split.header,
            ended: false,
        };
        loop {
            let frame = self.copy_message(shards).await?;
            match frame.tag() {
                tag::COPY_DATA => {
                    router.pending.extend_from_slice(frame.body());
                    if let Err(message) = router.route_complete_rows(shards) {
                        return self.fail_copy(shards, &message, "22P04").await;
                    }
                    self.send_batches(shards, &mut router, BATCH_BYTES).await?;
                }
                tag::COPY_DONE => {
                    if !router.pending.is_empty() {
                        // A last row without its newline.
                        router.pending.push(b'\n');
                        if let Err(message) = router.route_complete_rows(shards) {
                            return self.fail_copy(shards, &message, "22P04").await;
                        }
                    }
                    self.send_batches(shards, &mut router, 0).await?;
                    for &shard in shards {
                        self.end_copy(shard, Frame::new(tag::COPY_DONE, &[]))
                            .await?;
                    }
                    return Ok(Ok(()));
                }
                tag::COPY_FAIL => {
                    for &shard in shards {
                        self.end_copy(shard, frame.clone()).await?;
                    }
                    return Ok(Err(None));
                }
                tag::FLUSH | tag::SYNC => {}
                _ => {
                    return self
                        .fail_copy(shards, "unexpected message during COPY", "08P01")
                        .await
                }
            }
        }
    }

    async fn fail_copy(
        &mut self,
        shards: &[usize],
        message: &str,
        code: &str,
    ) -> Result<Result<(), Option<Frame>>, Lost> {
        for &shard in shards {
            self.end_copy(shard, copy_fail(message)).await?;
        }
        Ok(Err(Some(error_response(Severity::Error, code, message))))
    }

    async fn send_batches(
        &mut self,
        shards: &[usize],
        router: &mut RowRouter<'_>,
        at_least: usize,
    ) -> Result<(), Lost> {
        for (i, &shard) in shards.iter().enumerate() {
            if !router.batches[i].is_empty() && router.batches[i].len() >= at_least {
                let data = std::mem::take(&mut router.batches[i]);
                self.send_to(shard, &[Frame::new(tag::COPY_DATA, &data)])
                    .await?;
            }
        }
        Ok(())
    }

    /// Ends the COPY on `shard` with `frame` (CopyDone or CopyFail). In the extended
    /// protocol the shard ignored the Sync sent with the Execute while copying, so it gets
    /// another, or it would never report ReadyForQuery.
    pub(super) async fn end_copy(&mut self, shard: usize, frame: Frame) -> Result<(), Lost> {
        if self.copy_needs_sync {
            self.send_to(shard, &[frame, super::bind::sync_frame()])
                .await
        } else {
            self.send_to(shard, &[frame]).await
        }
    }

    /// Writes without flushing (the connection flushes once its buffer is large).
    async fn write_to(&mut self, shard: usize, frame: &Frame) -> Result<(), Lost> {
        let Some(link) = self.links.get_mut(shard).and_then(Option::as_mut) else {
            return Err(Lost {
                shard,
                reason: "no server connection".into(),
            });
        };
        link.server.write(frame).await.map_err(|e| Lost {
            shard,
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

impl RowRouter<'_> {
    /// Moves every complete row of `pending` to its shard's batch.
    fn route_complete_rows(&mut self, shards: &[usize]) -> Result<(), String> {
        let mut start = 0;
        while let Some(len) = self.scanner.row_end(&self.pending[start..], self.split) {
            let row = &self.pending[start..start + len];
            start += len;
            if self.ended {
                continue;
            }
            if self.header_pending {
                self.header_pending = false;
                for batch in &mut self.batches {
                    batch.extend_from_slice(row);
                }
                continue;
            }
            if row == b"\\.\n" || row == b"\\.\r\n" {
                self.ended = true;
                continue;
            }
            let key = copy_key_field(row, self.split).map_err(|e| e.to_string())?;
            let value = match key {
                None => KeyValue::Null,
                Some(bytes) => {
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| "pgshard: a COPY row's key is not valid UTF-8".to_string())?;
                    KeyValue::from_text(self.split.key_type, text).map_err(|e| e.to_string())?
                }
            };
            let shard = self
                .function
                .shard_of(&value, self.shards)
                .map_err(|e| e.to_string())?;
            let index = shards
                .iter()
                .position(|&s| s == shard)
                .ok_or_else(|| format!("pgshard: shard {shard} is not part of this COPY"))?;
            self.batches[index].extend_from_slice(row);
        }
        self.pending.drain(..start);
        if self.pending.len() > self.max_row {
            return Err(format!(
                "pgshard: a COPY row is longer than {} bytes (max_message_size)",
                self.max_row
            ));
        }
        Ok(())
    }
}

fn copy_fail(message: &str) -> Frame {
    let mut body = message.as_bytes().to_vec();
    body.push(0);
    Frame::new(tag::COPY_FAIL, &body)
}
