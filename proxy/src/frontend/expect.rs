//! Matching server replies to the messages that caused them, for the replies the proxy
//! must hide, forward or translate.

use std::collections::VecDeque;
use std::sync::Arc;

/// What to do with the reply to one Parse or Close sent to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyAction {
    /// The client sent it; it gets the reply.
    Forward,
    /// The proxy sent it on its own (re-preparing, evicting); the client must not see it.
    Swallow,
    /// A Close sent in place of a Parse of a statement the server already has: its
    /// CloseComplete becomes the client's ParseComplete, in the same place in the stream.
    AsParseComplete,
    /// A Parse the proxy refused, sent as one the server fails at once
    /// ([`REFUSED_PARSE`]), so the server skips the rest of the batch as PostgreSQL
    /// would after the client's own Parse failed; the server's error becomes the
    /// refusal.
    Refused,
}

/// The text of a Parse sent in place of one the proxy refuses: a syntax error, so the
/// server fails it at Parse whatever the client's transaction, and the error names it.
pub const REFUSED_PARSE: &str = "pgshard_refused_parse";

/// Whether a server's error (SQLSTATE, message) is its answer to [`REFUSED_PARSE`].
pub fn answers_refused_parse(code: &str, message: &str) -> bool {
    code == "42601" && message.contains(REFUSED_PARSE)
}

/// One awaited ParseComplete or CloseComplete.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Which Sync-delimited batch it belongs to; an error skips the rest of its batch.
    pub batch: u64,
    pub action: ReplyAction,
    /// For a Parse: the shared statement it creates on the server.
    pub statement: Option<Arc<str>>,
}

/// Replies awaited, in the order the server will send them.
#[derive(Debug, Default)]
pub struct ExpectedReplies {
    queue: VecDeque<Expected>,
}

impl ExpectedReplies {
    pub fn push(&mut self, batch: u64, action: ReplyAction, statement: Option<Arc<str>>) {
        self.queue.push_back(Expected {
            batch,
            action,
            statement,
        });
    }

    /// The entry the next reply answers; a reply nobody awaits is forwarded.
    pub fn pop(&mut self) -> Expected {
        self.queue.pop_front().unwrap_or(Expected {
            batch: 0,
            action: ReplyAction::Forward,
            statement: None,
        })
    }

    /// The server skips the rest of a batch after an error: those replies never come.
    /// Returns the statements whose Parse was skipped.
    pub fn skip_batch(&mut self, batch: u64) -> Vec<Arc<str>> {
        let mut skipped = Vec::new();
        self.queue.retain(|e| {
            if e.batch <= batch {
                skipped.extend(e.statement.clone());
                false
            } else {
                true
            }
        });
        skipped
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// What to do with the next reply, if it is awaited in `batch`.
    pub fn next_action(&self, batch: u64) -> Option<ReplyAction> {
        self.queue
            .front()
            .filter(|e| e.batch <= batch)
            .map(|e| e.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_skips_only_its_batch() {
        let mut q = ExpectedReplies::default();
        q.push(0, ReplyAction::Forward, Some(Arc::from("a")));
        q.push(0, ReplyAction::Swallow, None);
        q.push(1, ReplyAction::AsParseComplete, None);
        assert_eq!(q.skip_batch(0), vec![Arc::<str>::from("a")]);
        assert_eq!(q.pop().action, ReplyAction::AsParseComplete);
        assert_eq!(q.pop().action, ReplyAction::Forward);
    }
}
