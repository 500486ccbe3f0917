//! Reading a shard's replies: what the proxy answered itself (ParseComplete,
//! BindComplete) is dropped, and asynchronous messages go straight to the client.

use crate::net::messages::tag;
use crate::net::Frame;

use super::ShardedSession;

/// The shard's connection failed; the session cannot go on.
#[derive(Debug)]
pub struct Lost {
    pub shard: usize,
    pub reason: String,
}

impl ShardedSession {
    /// The next reply of `shard` that the statement's merge must look at.
    pub(super) async fn reply(&mut self, shard: usize) -> Result<Frame, Lost> {
        loop {
            let Some(link) = self.links.get_mut(shard).and_then(Option::as_mut) else {
                return Err(Lost {
                    shard,
                    reason: "no server connection".into(),
                });
            };
            let read = if link.on_primary {
                // A primary that stops answering is replaced by a failover; waiting on it
                // would leave the client hanging, so its work is given up as lost.
                let watch = self.core.db.shards[shard].primary_changes.clone();
                tokio::select! {
                    read = link.server.read() => read,
                    _ = replaced(watch, link.lease.node.0) => {
                        link.server.broken = true;
                        return Err(Lost {
                            shard,
                            reason: format!(
                                "{} is no longer the primary (failover)",
                                link.lease.addr()
                            ),
                        });
                    }
                }
            } else {
                link.server.read().await
            };
            let frame = read.map_err(|e| Lost {
                shard,
                reason: format!("{} ({e})", link.lease.addr()),
            })?;
            match frame.tag() {
                tag::PARSE_COMPLETE | tag::BIND_COMPLETE => continue,
                tag::NOTICE_RESPONSE | tag::PARAMETER_STATUS | tag::NOTIFICATION_RESPONSE => {
                    if frame.tag() == tag::PARAMETER_STATUS && !self.is_news(&frame) {
                        // Every shard reports the same settings: once is enough.
                        continue;
                    }
                    if self.core.client.write_frame(&frame).await.is_err() {
                        return Err(Lost {
                            shard,
                            reason: "client gone".into(),
                        });
                    }
                }
                _ => return Ok(frame),
            }
        }
    }

    /// Whether a ParameterStatus tells the client something it was not told yet; if so,
    /// it is remembered as told.
    fn is_news(&mut self, frame: &Frame) -> bool {
        let mut r = frame.reader();
        let (Ok(name), Ok(value)) = (r.cstr_utf8(), r.cstr_utf8()) else {
            return true;
        };
        if self.reported.get(name).map(String::as_str) == Some(value) {
            return false;
        }
        self.reported.insert(name.to_string(), value.to_string());
        true
    }

    /// Reads each of `shards` up to its first `wanted` message (e.g. RowDescription or
    /// CopyInResponse), or its error (that shard is then drained). Returns the first
    /// `wanted` message, the shards that sent one (still mid-reply), and the first error.
    pub(super) async fn first_replies(
        &mut self,
        shards: &[usize],
        wanted: u8,
    ) -> Result<(Option<Frame>, Vec<usize>, Option<Frame>), Lost> {
        let (mut first, mut started, mut error) = (None, Vec::new(), None);
        for &shard in shards {
            loop {
                let frame = self.reply(shard).await?;
                match frame.tag() {
                    t if t == wanted => {
                        first.get_or_insert(frame);
                        started.push(shard);
                        break;
                    }
                    tag::ERROR_RESPONSE => {
                        error.get_or_insert(frame);
                        self.drain(shard).await?;
                        break;
                    }
                    tag::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
        }
        Ok((first, started, error))
    }

    /// Reads `shard` up to its ReadyForQuery, dropping rows; returns its first error.
    pub(super) async fn drain(&mut self, shard: usize) -> Result<Option<Frame>, Lost> {
        let mut error = None;
        loop {
            let frame = self.reply(shard).await?;
            match frame.tag() {
                tag::READY_FOR_QUERY => return Ok(error),
                tag::ERROR_RESPONSE if error.is_none() => error = Some(frame),
                tag::COPY_IN_RESPONSE => {
                    // Nothing to copy: fail it so the shard returns to idle.
                    self.send_to(
                        shard,
                        &[Frame::new(
                            tag::COPY_FAIL,
                            b"pgshard: statement abandoned\0",
                        )],
                    )
                    .await?;
                }
                _ => {}
            }
        }
    }

    /// Writes and flushes frames to `shard`'s server.
    pub(super) async fn send_to(&mut self, shard: usize, frames: &[Frame]) -> Result<(), Lost> {
        let Some(link) = self.links.get_mut(shard).and_then(Option::as_mut) else {
            return Err(Lost {
                shard,
                reason: "no server connection".into(),
            });
        };
        let lost = |e: crate::net::WireError| Lost {
            shard,
            reason: e.to_string(),
        };
        for f in frames {
            link.server.write(f).await.map_err(lost)?;
        }
        link.server.flush().await.map_err(lost)
    }
}

/// Resolves once another node than `node` is the primary; never while no other is (a
/// switchover holds writes with no primary while transactions on the old one finish).
async fn replaced(mut watch: tokio::sync::watch::Receiver<Option<usize>>, node: usize) {
    loop {
        if matches!(*watch.borrow_and_update(), Some(p) if p != node) {
            return;
        }
        if watch.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
