//! Client messages held back until the proxy knows where their batch must run.

use crate::net::messages::tag;
use crate::net::Frame;

/// Beyond this many bytes a batch is sent on before its end is seen (to the primary,
/// which runs anything), so holding messages back never costs unbounded memory.
const MAX_HELD_BYTES: usize = 1 << 20;
const MAX_HELD_FRAMES: usize = 1024;

/// How a held batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// Query, Sync or FunctionCall: the whole batch is known.
    Complete,
    /// Flush, or too much held: more of the batch may follow.
    Open,
}

/// The messages of a batch that has no server yet, up to the message that ends it.
#[derive(Debug, Default)]
pub struct HeldBatch {
    frames: Vec<Frame>,
    bytes: usize,
}

impl HeldBatch {
    /// Holds `frame`; returns the batch once it must be sent.
    pub fn push(&mut self, frame: Frame) -> Option<(Vec<Frame>, BatchEnd)> {
        let t = frame.tag();
        self.bytes += frame.as_bytes().len();
        if self.frames.capacity() == 0 {
            // Parse, Bind, Describe, Execute, Sync: one allocation for a driver's batch.
            self.frames.reserve(8);
        }
        self.frames.push(frame);
        let end = match t {
            tag::QUERY | tag::SYNC | tag::FUNCTION_CALL => BatchEnd::Complete,
            tag::FLUSH => BatchEnd::Open,
            _ if self.bytes > MAX_HELD_BYTES || self.frames.len() >= MAX_HELD_FRAMES => {
                BatchEnd::Open
            }
            _ => return None,
        };
        self.bytes = 0;
        Some((std::mem::take(&mut self.frames), end))
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether a message of type `tag` is held.
    pub fn holds(&self, tag: u8) -> bool {
        self.frames.iter().any(|f| f.tag() == tag)
    }

    /// The messages held, to be sent before one that cannot wait for the batch's end.
    pub fn take(&mut self) -> Vec<Frame> {
        self.bytes = 0;
        std::mem::take(&mut self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_until_sync_or_flush() {
        let mut held = HeldBatch::default();
        assert!(held
            .push(Frame::new(tag::PARSE, b"\0select 1\0\0\0"))
            .is_none());
        assert!(held
            .push(Frame::new(tag::BIND, b"\0\0\0\0\0\0\0\0"))
            .is_none());
        let (frames, end) = held.push(Frame::new(tag::SYNC, b"")).unwrap();
        assert_eq!((frames.len(), end), (3, BatchEnd::Complete));
        assert!(held.is_empty());
        let (frames, end) = held.push(Frame::new(tag::FLUSH, b"")).unwrap();
        assert_eq!((frames.len(), end), (1, BatchEnd::Open));
    }

    #[test]
    fn a_huge_batch_is_sent_on_early() {
        let mut held = HeldBatch::default();
        let big = Frame::new(tag::BIND, &vec![0u8; MAX_HELD_BYTES / 2 + 1]);
        assert!(held.push(big.clone()).is_none());
        let (_, end) = held.push(big).unwrap();
        assert_eq!(end, BatchEnd::Open);
    }
}
