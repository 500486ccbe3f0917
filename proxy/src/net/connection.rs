//! A framed, buffered PostgreSQL protocol connection.

use bytes::{Buf, Bytes, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::budget::{Lease, MessageBudget, LARGE_MESSAGE};
use super::error::WireError;
use super::frame::{Frame, HEADER_LEN};
use super::streamed::{StreamedHead, STREAMED_HEAD, STREAM_FROM};

/// A client message as the session asked for it: whole, or the start of a large one
/// that is passed on as it arrives.
#[derive(Debug)]
pub enum ClientMessage {
    Whole(Frame),
    Streamed(StreamedHead),
}

/// Reads whole messages from a byte stream and buffers writes until `flush`.
///
/// `read_frame` is cancel-safe (all progress lives in the read buffer), so a session can
/// `select!` over its client and its server connection.
pub struct Connection<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// A large frame being written straight from its own bytes rather than copied into
    /// `wbuf`, and how much of it is written; it goes before anything in `wbuf`.
    large: Option<(Bytes, usize)>,
    max_len: usize,
    /// Where a large message's bytes are counted, for client connections.
    budget: Option<Arc<MessageBudget>>,
    /// The room held for the large message being read or last read.
    lease: Option<Lease>,
    /// Keep the buffers small between messages (client connections, which may idle by
    /// the thousand): reads start at [`SMALL_READ`] and an empty write buffer is freed.
    small_when_idle: bool,
    /// Bytes of a streamed message not read yet.
    rest: usize,
    /// What went through it so far.
    traffic: Traffic,
}

/// Bytes read and written on a connection, and the ReadyForQuery messages written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub received: u64,
    pub sent: u64,
    pub ready_sent: u64,
}

/// Flush the write buffer once it holds this much, so a large result streams.
const FLUSH_AT: usize = 64 * 1024;

/// Room made in the read buffer before a read: at least this much, so small messages
/// arriving together are read at once…
const MIN_READ: usize = 8 * 1024;

/// …and at most this much beyond the bytes already there, so a message's declared length
/// alone never grows the buffer: a 4-byte header declaring 60 MB costs 64 kB until the
/// body's bytes actually come.
const MAX_READ: usize = 64 * 1024;

/// Room the write buffer of an idle client connection comes back with: most replies fit.
const SMALL_WRITE: usize = 2048;

/// Room for a read of an idle client connection: most client messages fit.
const SMALL_READ: usize = 1024;

/// A buffer grown past this by a large message is replaced by a small one once the
/// message is out, so memory goes back after it.
const SHRINK_ABOVE: usize = 256 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, max_len: usize) -> Self {
        Self::with_buffer(stream, BytesMut::with_capacity(8 * 1024), max_len)
    }

    /// Takes over bytes already read from the stream (e.g. after a startup packet).
    pub fn with_buffer(stream: S, rbuf: BytesMut, max_len: usize) -> Self {
        Connection {
            stream,
            rbuf,
            wbuf: BytesMut::with_capacity(8 * 1024),
            large: None,
            max_len,
            budget: None,
            lease: None,
            small_when_idle: false,
            rest: 0,
            traffic: Traffic::default(),
        }
    }

    /// Keeps the buffers small between messages, for connections that mostly wait.
    pub fn set_small_when_idle(&mut self) {
        self.small_when_idle = true;
        if self.wbuf.is_empty() {
            self.wbuf = BytesMut::new();
        }
        self.shrink_read_buffer();
    }

    /// Counts this connection's large messages in `budget` (client connections, once
    /// logged in).
    pub fn set_budget(&mut self, budget: Arc<MessageBudget>) {
        self.budget = Some(budget);
    }

    /// The next whole message; `Closed` on a clean end of stream between messages.
    ///
    /// Asking for it gives back the room the previous large message held: by then the
    /// session has forwarded or dropped it.
    pub async fn read_frame(&mut self) -> Result<Frame, WireError> {
        match self.read_message(|_| false).await? {
            ClientMessage::Whole(frame) => Ok(frame),
            // Never asked for.
            ClientMessage::Streamed(_) => Err(WireError::Malformed("unexpected streamed message")),
        }
    }

    /// The next message, or the start of it when it is large and `stream` takes its
    /// tag: the rest of its body then comes from [`read_rest`](Self::read_rest), and is
    /// never held whole nor counted in the budget. Cancel-safe like `read_frame`.
    pub async fn read_message(
        &mut self,
        stream: impl Fn(u8) -> bool,
    ) -> Result<ClientMessage, WireError> {
        // What a session left of a streamed message is dropped: framing stays in step.
        if self.rest > 0 {
            while self.read_rest().await?.is_some() {}
        }
        if self.lease.take().is_some() || (self.small_when_idle && self.rbuf.is_empty()) {
            self.shrink_read_buffer();
        }
        loop {
            if let Some(len) = Frame::declared_len(&self.rbuf) {
                if len >= STREAM_FROM && len - 1 <= self.max_len && stream(self.rbuf[0]) {
                    let head = len.min(STREAMED_HEAD);
                    if self.rbuf.len() >= head {
                        self.rest = len - head;
                        let head = self.rbuf.split_to(head).freeze();
                        return Ok(ClientMessage::Streamed(StreamedHead::new(len, head)));
                    }
                    self.read_more().await?;
                    continue;
                }
            }
            match Frame::parse(&mut self.rbuf, self.max_len) {
                Err(WireError::Incomplete) => {}
                other => return other.map(ClientMessage::Whole),
            }
            self.reserve_large().await?;
            self.read_more().await?;
        }
    }

    /// The next bytes of the streamed message being read, as they arrive; `None` once it
    /// is all read.
    pub async fn read_rest(&mut self) -> Result<Option<Bytes>, WireError> {
        if self.rest == 0 {
            return Ok(None);
        }
        if self.rbuf.is_empty() {
            self.read_more().await?;
        }
        let n = self.rest.min(self.rbuf.len());
        self.rest -= n;
        Ok(Some(self.rbuf.split_to(n).freeze()))
    }

    /// The rest of the streamed message `head` began, read after all into one whole
    /// message, counted in the budget as a large message read whole is.
    pub async fn read_whole(&mut self, head: StreamedHead) -> Result<Frame, WireError> {
        if let (Some(budget), None) = (&self.budget, &self.lease) {
            self.lease = Some(budget.reserve(head.message_len()).await?);
        }
        let mut whole = BytesMut::with_capacity(head.message_len());
        whole.extend_from_slice(head.bytes());
        while let Some(piece) = self.read_rest().await? {
            whole.extend_from_slice(&piece);
        }
        Ok(Frame::from_bytes(whole.freeze()))
    }

    /// Reads what the stream has into the read buffer; an end of stream is `Closed`
    /// between messages and an error inside one.
    async fn read_more(&mut self) -> Result<(), WireError> {
        self.make_room();
        let read = self.stream.read_buf(&mut self.rbuf).await?;
        self.traffic.received += read as u64;
        if read == 0 {
            return if self.rbuf.is_empty() && self.rest == 0 {
                Err(WireError::Closed)
            } else {
                Err(WireError::Malformed("connection closed inside a message"))
            };
        }
        Ok(())
    }

    /// Room in the budget for a large message, before its body is read.
    async fn reserve_large(&mut self) -> Result<(), WireError> {
        let (Some(budget), None) = (&self.budget, &self.lease) else {
            return Ok(());
        };
        match Frame::declared_len(&self.rbuf) {
            // Called only once the header has parsed, so the length is within max_len.
            Some(len) if len >= LARGE_MESSAGE => {
                self.lease = Some(budget.reserve(len).await?);
            }
            _ => {}
        }
        Ok(())
    }

    /// Replaces a read buffer a large message grew with a small one (keeping the bytes
    /// that follow), so its memory goes back once the message is dropped.
    fn shrink_read_buffer(&mut self) {
        let above = if self.small_when_idle {
            SMALL_READ
        } else {
            SHRINK_ABOVE
        };
        if self.rbuf.capacity() > above && self.rbuf.len() <= MAX_READ {
            let mut small = BytesMut::with_capacity(self.min_read().max(self.rbuf.len()));
            small.extend_from_slice(&self.rbuf);
            self.rbuf = small;
        }
    }

    /// Room for the next read: what the message being read still lacks, between
    /// [`MIN_READ`] and [`MAX_READ`]. The buffer thus grows with the bytes that arrive.
    fn make_room(&mut self) {
        let missing = match self.rest {
            0 => Frame::declared_len(&self.rbuf)
                .map_or(HEADER_LEN, |len| len.saturating_sub(self.rbuf.len())),
            rest => rest,
        };
        let want = missing.clamp(self.min_read(), MAX_READ);
        if self.rbuf.capacity() - self.rbuf.len() < want {
            self.rbuf.reserve(want);
        }
    }

    fn min_read(&self) -> usize {
        if self.small_when_idle {
            SMALL_READ
        } else {
            MIN_READ
        }
    }

    /// What went through the connection so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Whether a whole message is already buffered (so reading it will not wait).
    pub fn has_buffered_frame(&self) -> bool {
        self.rest == 0 && Frame::declared_len(&self.rbuf).is_some_and(|len| self.rbuf.len() >= len)
    }

    /// Queues a message; flushes by itself when the buffer is large. A large message
    /// is written from its own bytes, not copied.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), WireError> {
        if frame.tag() == b'Z' {
            self.traffic.ready_sent += 1;
        }
        if frame.len() < FLUSH_AT {
            return self.write_bytes(frame.as_bytes()).await;
        }
        // What is queued goes first; then the frame, tracked so that a flush dropped
        // half-way resumes it.
        self.flush().await?;
        self.large = Some((frame.bytes(), 0));
        self.flush().await
    }

    pub async fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.wbuf.capacity() == 0 {
            // A freed buffer comes back at a size most replies fit, rather than growing
            // message by message.
            self.wbuf.reserve(bytes.len().max(SMALL_WRITE));
        }
        self.wbuf.extend_from_slice(bytes);
        if self.wbuf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes out what is buffered. Cancel-safe: what was written leaves the buffer as
    /// it goes, so a flush dropped half-way (a session ended at the shutdown deadline)
    /// leaves exactly the unwritten rest, and a later flush sends no byte twice.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        while let Some((bytes, written)) = &mut self.large {
            if *written >= bytes.len() {
                self.large = None;
                break;
            }
            let n = self.stream.write(&bytes[*written..]).await?;
            self.traffic.sent += n as u64;
            if n == 0 {
                return Err(WireError::Io("the peer takes no more bytes".to_string()));
            }
            *written += n;
        }
        while !self.wbuf.is_empty() {
            let written = self.stream.write(&self.wbuf).await?;
            self.traffic.sent += written as u64;
            if written == 0 {
                return Err(WireError::Io("the peer takes no more bytes".to_string()));
            }
            self.wbuf.advance(written);
        }
        if self.small_when_idle {
            self.wbuf = BytesMut::new();
        } else if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf = BytesMut::with_capacity(8 * 1024);
        }
        self.stream.flush().await?;
        Ok(())
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.write_frame(frame).await?;
        self.flush().await
    }

    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

/// What the peer of a connection that owes nothing has done unasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unasked {
    /// Nothing: the connection can be used.
    Nothing,
    /// It sent something (a server's FATAL before it goes away, or a message that
    /// breaks the protocol, such as a second ReadyForQuery).
    Sent,
    /// It closed the connection, or the connection failed.
    Closed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Whether an idle connection can still be used: the peer has neither closed it nor
    /// sent anything unasked.
    pub fn idle_and_open(&mut self) -> bool {
        self.unasked() == Unasked::Nothing
    }

    /// What the peer did while nothing was asked of it. Never waits: one read is polled
    /// and what it reads is dropped (TLS keeps no partial state in a poll), so a
    /// connection found anything but [`Unasked::Nothing`] is not to be used again.
    pub fn unasked(&mut self) -> Unasked {
        if !self.rbuf.is_empty() {
            return Unasked::Sent;
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            std::task::Poll::Pending => Unasked::Nothing,
            std::task::Poll::Ready(Ok(())) if !buf.filled().is_empty() => Unasked::Sent,
            std::task::Poll::Ready(_) => Unasked::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A peer that sends a header declaring 60 MB and then nothing: the connection waits
    /// for the body with a buffer that has not grown towards 60 MB.
    #[tokio::test]
    async fn a_declared_length_alone_does_not_grow_the_buffer() {
        let (mut peer, ours) = tokio::io::duplex(1 << 20);
        let mut conn = Connection::new(ours, 64 << 20);
        let mut header = vec![b'Q'];
        header.extend_from_slice(&(60i32 << 20).to_be_bytes());
        header.extend_from_slice(b"SELECT");
        peer.write_all(&header).await.unwrap();
        let read = tokio::time::timeout(Duration::from_millis(100), conn.read_frame()).await;
        assert!(read.is_err(), "a 6-byte body cannot be a whole message");
        assert!(
            conn.rbuf.capacity() <= 2 * MAX_READ,
            "the buffer grew to {} bytes on a header alone",
            conn.rbuf.capacity()
        );
    }

    /// A large message arriving in pieces is read whole, in a buffer about its size.
    #[tokio::test]
    async fn a_large_message_arrives_whole() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(ours, 64 << 20);
        let body = vec![b'x'; 3 << 20];
        let frame = Frame::new(b'd', &body);
        let sent = frame.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.as_bytes().chunks(10_000) {
                peer.write_all(piece).await.unwrap();
            }
            peer
        });
        let got = conn.read_frame().await.unwrap();
        assert_eq!(got, frame);
        assert!(conn.rbuf.capacity() <= 2 * frame.len() + 2 * MAX_READ);
        drop(writer.await.unwrap());
    }

    /// A large message the reader takes as a stream comes as its head and then pieces
    /// no larger than a read, never whole; a streamed message left unread is skipped, so
    /// the next message is read from its own start.
    #[tokio::test]
    async fn a_large_message_taken_as_a_stream_comes_in_pieces() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(ours, 64 << 20);
        let body: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let large = Frame::new(b'Q', &body);
        let small = Frame::new(b'S', b"");
        let sent = [
            large.as_bytes(),
            small.as_bytes(),
            large.as_bytes(),
            small.as_bytes(),
        ]
        .concat();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(10_000) {
                peer.write_all(piece).await.unwrap();
            }
            peer
        });
        let ClientMessage::Streamed(head) = conn.read_message(|t| t == b'Q').await.unwrap() else {
            panic!("not streamed");
        };
        assert_eq!(head.message_len(), large.len());
        let mut got = head.bytes().to_vec();
        while let Some(piece) = conn.read_rest().await.unwrap() {
            assert!(piece.len() <= 2 * MAX_READ);
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, large.as_bytes());
        assert!(conn.rbuf.capacity() <= 4 * MAX_READ);
        let next = conn.read_message(|t| t == b'Q').await.unwrap();
        assert!(matches!(next, ClientMessage::Whole(f) if f == small));
        // Streamed again, then left unread: the following read skips its rest.
        assert!(matches!(
            conn.read_message(|t| t == b'Q').await.unwrap(),
            ClientMessage::Streamed(_)
        ));
        assert_eq!(conn.read_frame().await.unwrap(), small);
        drop(writer.await.unwrap());
    }
}
