//! `COPY sharded_table TO STDOUT`: every shard copies its rows out, and the client gets
//! them as one copy — one CopyOutResponse, each shard's rows in turn as they stream (the
//! first shard's header line only), one CopyDone, and the row counts summed in one
//! "COPY n". Row order across shards is unspecified, as a table's order is in PostgreSQL.

use super::execute::{Dispatch, Outcome};
use super::replies::Lost;
use super::write_counts::split_tag;
use super::ShardedSession;
use crate::net::messages::{command_complete, tag};
use crate::net::Frame;

impl ShardedSession {
    pub(super) async fn copy_out(
        &mut self,
        dispatch: &Dispatch,
        header: bool,
    ) -> Result<Outcome, Lost> {
        let mut started = false;
        let mut total = 0u64;
        let mut error = None;
        for (i, &shard) in dispatch.shards.iter().enumerate() {
            // Each shard's first CopyData is its header line, when there is one.
            let mut skip_header = header && i > 0;
            loop {
                let frame = self.reply(shard).await?;
                match frame.tag() {
                    tag::READY_FOR_QUERY => break,
                    // The described portal's NoData, once, before the copy starts.
                    tag::NO_DATA if i == 0 && !started && error.is_none() => {
                        self.send_client(&frame).await?;
                    }
                    tag::COPY_OUT_RESPONSE if !started && error.is_none() => {
                        self.send_client(&frame).await?;
                        started = true;
                    }
                    tag::COPY_DATA => {
                        if skip_header {
                            skip_header = false;
                        } else if error.is_none() {
                            self.send_client(&frame).await?;
                        }
                    }
                    // One CopyDone, after every shard's rows.
                    tag::COPY_DONE => {}
                    tag::COMMAND_COMPLETE => {
                        if let Some((_, count)) = split_tag(&frame) {
                            total += count;
                        }
                    }
                    tag::ERROR_RESPONSE => {
                        error.get_or_insert(frame);
                    }
                    _ => {}
                }
            }
        }
        if let Some(error) = error {
            // PostgreSQL too may end a copy out with an error instead of CopyDone.
            self.send_client(&error).await?;
            return Ok(Outcome::Failed);
        }
        if started {
            self.send_client(&Frame::new(tag::COPY_DONE, &[])).await?;
        }
        self.send_client(&command_complete(&format!("COPY {total}")))
            .await?;
        Ok(Outcome::Done)
    }
}
