//! A client message too large to hold whole, passed on as its bytes arrive.

use bytes::Bytes;

use super::frame::{Frame, HEADER_LEN};

/// The start of a large client message that a session passes on to its server as the
/// bytes arrive (a query with large literals, a Bind with large parameters, a large
/// CopyData), so that the proxy never holds it whole: its header and the first bytes of
/// its body. The rest comes from [`Connection::read_rest`](super::Connection::read_rest).
#[derive(Debug)]
pub struct StreamedHead {
    /// The whole message's length, tag included.
    len: usize,
    /// The header and the first bytes of the body.
    head: Bytes,
}

/// Messages from this size on may be streamed; smaller ones are always read whole.
pub const STREAM_FROM: usize = super::budget::LARGE_MESSAGE;

/// How much of a streamed message is read before it is handed on: enough for the names
/// at the start of a Bind and the first statements of a query.
pub const STREAMED_HEAD: usize = 64 * 1024;

impl StreamedHead {
    pub(super) fn new(len: usize, head: Bytes) -> StreamedHead {
        StreamedHead { len, head }
    }

    pub fn tag(&self) -> u8 {
        self.head[0]
    }

    /// The whole message's length, tag included.
    pub fn message_len(&self) -> usize {
        self.len
    }

    /// The header and the first bytes of the body, as they go on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.head
    }

    /// The first bytes of the body.
    pub fn body(&self) -> &[u8] {
        &self.head[HEADER_LEN..]
    }

    /// The header and the first bytes of a message with `body` in place of this one's
    /// first body bytes (a Bind naming the proxy's statement instead of the client's),
    /// its length changed to match.
    pub fn with_body_start(&self, replaced: usize, body: &[u8]) -> Option<Vec<u8>> {
        let rest = self.body().get(replaced..)?;
        let len = (self.len - HEADER_LEN + body.len()).checked_sub(replaced)?;
        let declared = i32::try_from(len + 4).ok()?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + rest.len());
        out.push(self.tag());
        out.extend_from_slice(&declared.to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(rest);
        Some(out)
    }

    /// A small stand-in with this message's tag, for replies that depend on it alone.
    pub fn stand_in(&self) -> Frame {
        Frame::new(self.tag(), &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_start_is_replaced_and_the_length_follows() {
        let whole = Frame::new(b'B', b"p\0stmt\0rest-of-the-bind");
        let head = StreamedHead::new(whole.len(), whole.bytes().slice(..12));
        let renamed = head.with_body_start(7, b"p\0pgshard_1\0").unwrap();
        let expected = Frame::new(b'B', b"p\0pgshard_1\0rest-of-the-bind");
        assert_eq!(&renamed[..], &expected.as_bytes()[..renamed.len()]);
        assert!(head.with_body_start(100, b"").is_none());
    }
}
