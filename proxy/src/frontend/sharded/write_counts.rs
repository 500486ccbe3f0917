//! Writes that ran on several shards: row counts summed into one command tag, RETURNING
//! rows passed on (in the client's VALUES order for a split INSERT).

use std::collections::VecDeque;

use super::execute::{Dispatch, Outcome, Statement};
use super::replies::Lost;
use super::ShardedSession;
use crate::net::messages::{command_complete, tag};
use crate::net::Frame;

/// A command tag split into its words and its row count: "INSERT 0 5" → ("INSERT 0", 5).
pub fn split_tag(frame: &Frame) -> Option<(String, u64)> {
    let text = frame.reader().cstr_utf8().ok()?;
    let (command, count) = text.rsplit_once(' ')?;
    Some((command.to_string(), count.parse().ok()?))
}

impl ShardedSession {
    pub(super) async fn write_counts(
        &mut self,
        dispatch: &Dispatch,
        row_shards: Option<&Vec<usize>>,
        stmt: &Statement<'_>,
        implicit: bool,
    ) -> Result<Outcome, Lost> {
        let mut described = false;
        let mut command = None;
        let mut total = 0u64;
        let mut error = None;
        let mut queued: Vec<VecDeque<Frame>> = vec![VecDeque::new(); dispatch.shards.len()];
        for (i, &shard) in dispatch.shards.iter().enumerate() {
            loop {
                let frame = self.reply(shard).await?;
                match frame.tag() {
                    tag::READY_FOR_QUERY => break,
                    tag::ROW_DESCRIPTION | tag::NO_DATA => {
                        if !described && stmt.describe {
                            self.send_client(&frame).await?;
                        }
                        described = true;
                    }
                    tag::DATA_ROW if row_shards.is_some() => queued[i].push_back(frame),
                    tag::DATA_ROW => self.send_client(&frame).await?,
                    tag::COMMAND_COMPLETE => {
                        if let Some((words, count)) = split_tag(&frame) {
                            total += count;
                            command.get_or_insert(words);
                        }
                    }
                    tag::ERROR_RESPONSE => {
                        error.get_or_insert(frame);
                    }
                    _ => {}
                }
            }
        }
        if implicit {
            let commit_error = self.end_implicit(&dispatch.shards, error.is_none()).await?;
            if error.is_none() {
                error = commit_error;
            }
        }
        if let Some(error) = error {
            self.send_client(&error).await?;
            return Ok(Outcome::Failed);
        }
        if let Some(order) = row_shards {
            for shard in order {
                let Some(i) = dispatch.shards.iter().position(|s| s == shard) else {
                    continue;
                };
                if let Some(row) = queued[i].pop_front() {
                    self.send_client(&row).await?;
                }
            }
        }
        let command = command.unwrap_or_else(|| "INSERT 0".to_string());
        self.send_client(&command_complete(&format!("{command} {total}")))
            .await?;
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_into_command_and_count() {
        assert_eq!(
            split_tag(&command_complete("INSERT 0 5")),
            Some(("INSERT 0".into(), 5))
        );
        assert_eq!(
            split_tag(&command_complete("UPDATE 12")),
            Some(("UPDATE".into(), 12))
        );
        assert_eq!(split_tag(&command_complete("CREATE TABLE")), None);
    }
}
